//! DNS SRV lookup (RFC 2782) for `_xmpp-client._tcp` and
//! `_xmpps-client._tcp` (RFC 6120 §3.2.1, XEP-0368): one UDP query to the
//! system's (or a given) name server, answers ordered by priority and,
//! within a priority, at random by weight.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

/// One SRV answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    /// The host name, without the final dot.
    pub(crate) target: String,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Records in the order to try them.
    Records(Vec<Record>),
    /// The name has no SRV records: fall back to the domain itself.
    None,
    /// The domain says it offers no such service (a single target `.`).
    Refused,
}

const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// The first `nameserver` of `/etc/resolv.conf`.
pub(crate) fn system_name_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|address| address.split('%').next())
            .and_then(|address| address.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Looks up the SRV records of `name` at `server`: two tries, two seconds
/// each.
pub(crate) async fn lookup(name: &str, server: SocketAddr) -> io::Result<Lookup> {
    let id = random_u16();
    let query = encode_query(id, name)?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    let mut buffer = vec![0u8; 4096];
    for _ in 0..2 {
        socket.send(&query).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let received = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                Ok(received) => received?,
                Err(_) => break,
            };
            // Answers to other queries (or forged ones with the wrong id)
            // are skipped.
            if let Some(lookup) = parse_response(&buffer[..received], id)? {
                return Ok(order(lookup));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no DNS answer from {server} for {name}"),
    ))
}

fn random_u16() -> u16 {
    let id = sigil_proto::random_id();
    id.get(..4)
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        .unwrap_or(0x5167)
}

fn encode_query(id: u16, name: &str) -> io::Result<Vec<u8>> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad DNS name {name:?}"),
        )
    };
    let mut out = Vec::with_capacity(name.len() + 18);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid());
        }
        out.push(u8::try_from(label.len()).map_err(|_| invalid())?);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 12 + 255 {
        return Err(invalid());
    }
    out.extend_from_slice(&TYPE_SRV.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed DNS answer")
}

fn u16_at(data: &[u8], at: usize) -> io::Result<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(malformed)
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset
/// after it in the record.
fn read_name(data: &[u8], mut at: usize) -> io::Result<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let length = *data.get(at).ok_or_else(malformed)?;
        match length {
            0 => return Ok((name, end.unwrap_or(at + 1))),
            1..=63 => {
                let label = data
                    .get(at + 1..at + 1 + usize::from(length))
                    .ok_or_else(malformed)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(std::str::from_utf8(label).map_err(|_| malformed())?);
                at += 1 + usize::from(length);
            }
            0xc0..=0xff => {
                let pointer = usize::from(u16_at(data, at)? & 0x3fff);
                end.get_or_insert(at + 2);
                at = pointer;
            }
            _ => return Err(malformed()),
        }
    }
    Err(malformed())
}

/// `Ok(None)` for a datagram that is not the answer to query `id`.
fn parse_response(data: &[u8], id: u16) -> io::Result<Option<Lookup>> {
    if data.len() < 12 || u16_at(data, 0)? != id || data[2] & 0x80 == 0 {
        return Ok(None);
    }
    match data[3] & 0x0f {
        0 => {}
        3 => return Ok(Some(Lookup::None)), // NXDOMAIN
        code => {
            return Err(io::Error::other(format!(
                "the DNS server answered with error code {code}"
            )));
        }
    }
    let questions = u16_at(data, 4)?;
    let answers = u16_at(data, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(data, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(data, at)?;
        let kind = u16_at(data, after)?;
        let class = u16_at(data, after + 2)?;
        let length = usize::from(u16_at(data, after + 8)?);
        let rdata = after + 10;
        if data.len() < rdata + length {
            return Err(malformed());
        }
        if kind == TYPE_SRV && class == CLASS_IN {
            let (target, _) = read_name(data, rdata + 6)?;
            records.push(Record {
                priority: u16_at(data, rdata)?,
                weight: u16_at(data, rdata + 2)?,
                port: u16_at(data, rdata + 4)?,
                target,
            });
        }
        at = rdata + length;
    }
    Ok(Some(match records.as_slice() {
        [] => Lookup::None,
        [only] if only.target.is_empty() => Lookup::Refused,
        _ => Lookup::Records(records),
    }))
}

/// RFC 2782 order: by priority; within one, by weight at random.
fn order(lookup: Lookup) -> Lookup {
    let Lookup::Records(mut records) = lookup else {
        return lookup;
    };
    records.retain(|r| !r.target.is_empty());
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    for priority in records
        .iter()
        .map(|r| r.priority)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let mut group: Vec<Record> = records
            .iter()
            .filter(|r| r.priority == priority)
            .cloned()
            .collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut roll = u32::from(random_u16()) % (total + 1);
                group
                    .iter()
                    .position(|r| {
                        let weight = u32::from(r.weight);
                        if roll <= weight {
                            true
                        } else {
                            roll -= weight;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            ordered.push(group.remove(pick));
        }
    }
    Lookup::Records(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u16, records: &[(u16, u16, u16, &str)]) -> Vec<u8> {
        let mut out = encode_query(id, "_xmpp-client._tcp.example.org").unwrap();
        out[2] = 0x81;
        out[3] = 0x80;
        out[7] = u8::try_from(records.len()).unwrap();
        for (priority, weight, port, target) in records {
            out.extend_from_slice(&[0xc0, 12]); // the question's name
            out.extend_from_slice(&TYPE_SRV.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&300u32.to_be_bytes());
            let mut rdata = Vec::new();
            for value in [priority, weight, port] {
                rdata.extend_from_slice(&value.to_be_bytes());
            }
            for label in target.split('.').filter(|l| !l.is_empty()) {
                rdata.push(u8::try_from(label.len()).unwrap());
                rdata.extend_from_slice(label.as_bytes());
            }
            rdata.push(0);
            out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        out
    }

    #[test]
    fn answers_are_read_and_ordered_by_priority() {
        let data = answer(
            7,
            &[
                (20, 0, 5222, "b.example.org"),
                (10, 5, 5269, "a.example.org"),
            ],
        );
        let Some(Lookup::Records(records)) = parse_response(&data, 7).unwrap().map(order) else {
            panic!()
        };
        assert_eq!(records[0].target, "a.example.org");
        assert_eq!((records[0].priority, records[0].port), (10, 5269));
        assert_eq!(records[1].target, "b.example.org");
        assert_eq!(
            parse_response(&data, 8).unwrap(),
            None,
            "another query's id"
        );
        assert_eq!(
            parse_response(&answer(7, &[(0, 0, 0, ".")]), 7).unwrap(),
            Some(Lookup::Refused)
        );
        assert_eq!(
            parse_response(&answer(7, &[]), 7).unwrap(),
            Some(Lookup::None)
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let data = answer(7, &[(10, 5, 5269, "a.example.org")]);
        for cut in 12..data.len() {
            let _ = parse_response(&data[..cut], 7);
        }
        let mut looped = answer(7, &[(10, 5, 5269, "a.example.org")]);
        let at = looped.len() - 15;
        looped[at] = 0xc0;
        looped[at + 1] = u8::try_from(at).unwrap();
        assert!(parse_response(&looped, 7).is_err());
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &"x".repeat(64)).is_err());
    }
}
