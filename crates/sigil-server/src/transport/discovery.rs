//! XEP-0156 web discovery: `/.well-known/host-meta` (XRD) and
//! `/.well-known/host-meta.json` name the WebSocket and BOSH endpoints of
//! every HTTPS listener, so a browser client given only the domain finds
//! them. The answer is public (it names addresses anyone can try), so it
//! is served to every origin, without credentials.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// The link relation of a WebSocket endpoint (XEP-0156).
pub(crate) const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
/// The link relation of a BOSH endpoint (XEP-0156).
pub(crate) const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";

/// The endpoints of one HTTPS listener, as clients reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// `wss://domain[:port]/xmpp-websocket`.
    pub(crate) websocket: String,
    /// `https://domain[:port]/http-bind`.
    pub(crate) bosh: String,
}

impl Endpoints {
    /// The endpoints of a listener on `port`, named by the served domain
    /// (the name in the server's certificate).
    pub(crate) fn new(domain: &str, port: u16) -> Self {
        let authority = crate::config::https_authority(domain, port);
        Self {
            websocket: format!("wss://{authority}/xmpp-websocket"),
            bosh: format!("https://{authority}/http-bind"),
        }
    }
}

/// The host-meta document: XRD, or JSON (JRD) when `json`.
pub(crate) fn host_meta(endpoints: &[Endpoints], json: bool) -> Response<Full<Bytes>> {
    let links = endpoints.iter().flat_map(|e| {
        [
            (REL_WEBSOCKET, e.websocket.as_str()),
            (REL_BOSH, e.bosh.as_str()),
        ]
    });
    let (body, kind) = if json {
        let links: Vec<String> = links
            .map(|(rel, href)| format!("{{\"rel\":\"{rel}\",\"href\":\"{}\"}}", json_escape(href)))
            .collect();
        (
            format!("{{\"links\":[{}]}}", links.join(",")),
            "application/json",
        )
    } else {
        let mut body = String::from(
            "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
        );
        for (rel, href) in links {
            body.push_str("  <Link rel='");
            body.push_str(rel);
            body.push_str("' href='");
            sigil_xml::escape_attribute(&mut body, href);
            body.push_str("'/>\n");
        }
        body.push_str("</XRD>\n");
        (body, "application/xrd+xml; charset=utf-8")
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    response
}

/// A JSON string's content (the URLs here are ASCII without quotes, but
/// a domain is configuration, not code).
fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http_body_util::BodyExt as _;

    use super::*;

    async fn text(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn endpoints_leave_out_the_default_port() {
        assert_eq!(
            Endpoints::new("example.org", 443).websocket,
            "wss://example.org/xmpp-websocket"
        );
        assert_eq!(
            Endpoints::new("example.org", 5281).bosh,
            "https://example.org:5281/http-bind"
        );
    }

    #[tokio::test]
    async fn both_documents_name_both_endpoints() {
        let endpoints = [Endpoints::new("example.org", 5281)];
        let xrd = host_meta(&endpoints, false);
        assert_eq!(
            xrd.headers()[header::CONTENT_TYPE],
            "application/xrd+xml; charset=utf-8"
        );
        let xrd = sigil_xml::Element::parse(text(xrd).await.split_once('\n').unwrap().1).unwrap();
        let links: Vec<(&str, &str)> = xrd
            .children()
            .map(|l| (l.attribute("rel").unwrap(), l.attribute("href").unwrap()))
            .collect();
        assert_eq!(
            links,
            [
                (REL_WEBSOCKET, "wss://example.org:5281/xmpp-websocket"),
                (REL_BOSH, "https://example.org:5281/http-bind"),
            ]
        );
        let json = text(host_meta(&endpoints, true)).await;
        assert_eq!(
            json,
            "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"wss://example.org:5281/xmpp-websocket\"},{\"rel\":\"urn:xmpp:alt-connections:xbosh\",\"href\":\"https://example.org:5281/http-bind\"}]}"
        );
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
