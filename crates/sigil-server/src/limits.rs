//! Limits on what one client may take: how fast a connection is read
//! ([`ReadBudget`]), how many connections one address may have in the
//! middle of logging in ([`Pending`]), and how long a write may wait for
//! a client that stopped reading ([`WriteDeadline`]).
//!
//! Bytes are charged as they come off the wire: TCP after TLS, each
//! WebSocket message, each BOSH body whole. A TCP connection is pending
//! from its acceptance until its session binds; on the HTTPS listener a
//! connection until its TLS handshake ends, then each WebSocket or BOSH
//! session it opens until that binds. Over the limit, STARTTLS gets a
//! `policy-violation` stream error in the clear, direct TLS and HTTPS
//! connections are closed before any handshake work, and WebSocket
//! upgrades and new BOSH sessions get HTTP 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token bucket over the bytes read from one connection: `rate` bytes a
/// second on average, and at most one second's worth at once. A client
/// that sends faster is not disconnected: the connection is not read again
/// until it has paid for what it sent, so TCP's flow control slows the
/// client down and the server's memory and CPU stay its own.
#[derive(Debug, Clone)]
pub struct ReadBudget {
    /// Bytes a second; 0: no limit.
    rate: u64,
    /// Bytes that may be read now; negative: owed.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl ReadBudget {
    /// A full bucket for `rate` bytes a second (0: no limit).
    pub fn new(rate: u64, now: Instant) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let tokens = rate as f64;
        Self {
            rate,
            tokens,
            last: now,
        }
    }

    /// Changes the rate (at authentication), keeping what is owed; the
    /// bucket's capacity follows the new rate.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        #[allow(clippy::cast_precision_loss)]
        let capacity = rate as f64;
        // From no limit, the bucket starts full; otherwise it keeps what
        // is owed and is cut to its new size.
        self.tokens = if self.rate == 0 {
            capacity
        } else {
            self.tokens.min(capacity)
        };
        self.rate = rate;
    }

    /// Pays for `bytes` read at `now`: how long to wait before reading
    /// again, if the connection is in debt.
    pub fn charge(&mut self, bytes: usize, now: Instant) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        self.refill(now);
        #[allow(clippy::cast_precision_loss)]
        let (bytes, rate) = (bytes as f64, self.rate as f64);
        self.tokens -= bytes;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / rate))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        #[allow(clippy::cast_precision_loss)]
        let rate = self.rate as f64;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
    }
}

/// Connections per IP address that have not logged in yet. A connection
/// holds a [`PendingGuard`] from its acceptance until its session binds (or
/// it ends); the address may have at most `limit` of them at once.
#[derive(Debug, Default)]
pub struct Pending {
    /// 0: no limit.
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl Pending {
    /// At most `limit` pending connections per address (0: no limit).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `address`; `None` when the address
    /// has `limit` pending already.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<PendingGuard> {
        let address = canonical(address);
        let mut counts = crate::router::lock(&self.counts);
        let count = counts.entry(address).or_insert(0);
        if self.limit != 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PendingGuard {
            pending: self.clone(),
            address,
        })
    }

    /// How many connections from `address` are pending.
    pub fn count(&self, address: IpAddr) -> usize {
        crate::router::lock(&self.counts)
            .get(&canonical(address))
            .copied()
            .unwrap_or(0)
    }

    fn release(&self, address: IpAddr) {
        let mut counts = crate::router::lock(&self.counts);
        if let Some(count) = counts.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&address);
                if counts.capacity() > 64 && counts.len() < counts.capacity() / 4 {
                    counts.shrink_to_fit();
                }
            }
        }
    }
}

/// What counts as one address: an IPv4 address (also when it reaches an
/// IPv6 socket), or an IPv6 /64, the block one host or one site usually
/// holds whole.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// One pending connection; dropping it ends its count.
#[derive(Debug)]
pub struct PendingGuard {
    pending: Arc<Pending>,
    address: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.release(self.address);
    }
}

/// A connection whose writes must make progress within a time: a client
/// that stops reading (its socket's buffers full) has its connection end
/// with `TimedOut` instead of holding it, and what waits to be written,
/// forever. Reads are not timed here (an idle WebSocket reads nothing for
/// hours); whoever reads bounds its own wait.
pub struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// `inner`, whose writes may wait at most `limit`.
    pub fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
        }
    }

    /// Turns a waiting write into `TimedOut` once the limit has passed.
    fn check<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::future::Future as _;
        if poll.is_ready() {
            self.timer = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => {
                self.timer = None;
                std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client took nothing for the write timeout",
                )))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write(cx, data);
        this.check(cx, poll)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_one_seconds_worth_through_then_asks_for_time() {
        let start = Instant::now();
        let mut budget = ReadBudget::new(1000, start);
        assert_eq!(budget.charge(600, start), None);
        assert_eq!(budget.charge(400, start), None);
        // 500 bytes over: half a second at 1,000 bytes a second.
        let wait = budget.charge(500, start).unwrap();
        assert_eq!(wait, Duration::from_millis(500));
        // After that half second the debt is paid, nothing more.
        let later = start + Duration::from_millis(500);
        assert_eq!(budget.charge(0, later), None);
        assert_eq!(budget.charge(1, later), Some(Duration::from_millis(1)));
    }

    #[test]
    fn the_bucket_never_holds_more_than_one_second() {
        let start = Instant::now();
        let mut budget = ReadBudget::new(1000, start);
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(budget.charge(1000, much_later), None);
        assert!(budget.charge(10, much_later).is_some());
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let start = Instant::now();
        let mut budget = ReadBudget::new(0, start);
        assert_eq!(budget.charge(usize::MAX / 2, start), None);
    }

    #[test]
    fn a_new_rate_keeps_the_debt_and_caps_the_bucket() {
        let start = Instant::now();
        let mut budget = ReadBudget::new(100, start);
        assert!(budget.charge(300, start).is_some()); // 200 owed
        budget.set_rate(1000, start);
        assert_eq!(budget.charge(0, start), Some(Duration::from_millis(200)));
        let mut unlimited = ReadBudget::new(100, start);
        unlimited.set_rate(0, start);
        assert_eq!(unlimited.charge(1 << 20, start), None);
        // From a fast rate to a slow one: the bucket shrinks to the new size.
        let mut slower = ReadBudget::new(10_000, start);
        slower.set_rate(100, start);
        assert_eq!(slower.charge(100, start), None);
        assert!(slower.charge(1, start).is_some());
    }

    #[test]
    fn an_address_gets_its_limit_of_pending_connections_and_no_more() {
        let pending = Pending::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = pending.admit(a).unwrap();
        let second = pending.admit(a).unwrap();
        assert!(pending.admit(a).is_none());
        // Another address is not affected.
        let other = pending.admit(b).unwrap();
        assert_eq!(pending.count(a), 2);
        drop(first);
        assert_eq!(pending.count(a), 1);
        let third = pending.admit(a).unwrap();
        drop((second, third, other));
        assert_eq!(pending.count(a), 0);
        assert_eq!(pending.count(b), 0);
        assert!(crate::router::lock(&pending.counts).is_empty());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let pending = Pending::new(1);
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        let _held = pending.admit(v4).unwrap();
        assert!(pending.admit(mapped).is_none());
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let pending = Pending::new(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = pending.admit(a).unwrap();
        assert!(pending.admit(same_64).is_none());
        assert!(pending.admit(other_64).is_some());
    }

    #[test]
    fn from_no_limit_to_a_rate_the_bucket_starts_full() {
        let start = Instant::now();
        let mut budget = ReadBudget::new(0, start);
        assert_eq!(budget.charge(1 << 20, start), None);
        budget.set_rate(1000, start);
        assert_eq!(budget.charge(1000, start), None);
        assert!(budget.charge(1, start).is_some());
    }

    #[test]
    fn limit_zero_counts_but_never_refuses() {
        let pending = Pending::new(0);
        let a: IpAddr = "::1".parse().unwrap();
        let guards: Vec<_> = (0..1000).map(|_| pending.admit(a).unwrap()).collect();
        assert_eq!(pending.count(a), 1000);
        drop(guards);
        assert_eq!(pending.count(a), 0);
    }
}
