//! The web chat the HTTPS listener serves: the pages (`/`, `/password`),
//! their scripts, and Converse.js's files at `/dist/`.
//!
//! Converse.js comes vendored with Sigil (`web/converse/`, with its
//! licence and a SHA-256 of every file, checked by the test suite), so a
//! fresh checkout serves the chat with no other step; `[http] web_assets`
//! names another copy. Every page forbids loading anything from another
//! host (Content-Security-Policy), so the chat makes no request outside
//! this server. Files are streamed from disk in pieces, never read whole.
//!
//! `/` serves Converse.js configured for `authentication: 'external'`
//! with `Strophe.SASLExternal` the only mechanism, WebSocket first and
//! BOSH with `?transport=bosh`. The page carries, in a `<meta>`, the bare
//! JID of the certificate its connection presented, so nothing is typed;
//! without a certificate for this domain it says how to get one and
//! links `/password`. The scripts are files (`/chat.js`, `/password.js`),
//! so the Content-Security-Policy allows no inline script; Converse's
//! fullscreen footer (sponsor logos from conversejs.org) is replaced by
//! an empty element. HSTS is sent unless the domain is `localhost`
//! (it would bind every other local web server to HTTPS). Files go out in
//! 64 KiB pieces, each read when the connection took the one before
//! (`FileBody`); `.map` files only with `[http] source_maps`.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body_util::Full;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncRead;

/// What the web pages need to know of the server.
#[derive(Debug)]
pub(crate) struct WebSettings {
    /// Converse.js's files, when found.
    pub(crate) assets: Option<PathBuf>,
    /// Serve `.map` files from `assets` (off: they are large, for
    /// debugging only).
    pub(crate) source_maps: bool,
    /// Send `Strict-Transport-Security` (not for `localhost`, where it
    /// would bind every other local web server to HTTPS).
    pub(crate) hsts: bool,
    /// The domain served, for the page without a certificate and the
    /// invitations' pages.
    pub(crate) domain: String,
    /// Whether invitations can be redeemed (`[invites] enabled`): their
    /// pages say so when not.
    pub(crate) invites_enabled: bool,
}

/// The response body of the HTTPS listener: a buffer, or a file read in
/// pieces.
pub(crate) type Body = http_body_util::Either<Full<Bytes>, FileBody>;

const INDEX: &str = include_str!("../../../web/index.html");
const PASSWORD: &str = include_str!("../../../web/password.html");
const NO_CERTIFICATE: &str = include_str!("../../../web/no-certificate.html");
const MISSING: &str = include_str!("../../../web/missing.html");
const CHAT_JS: &str = include_str!("../../../web/chat.js");
const PASSWORD_JS: &str = include_str!("../../../web/password.js");

/// Nothing from other hosts; scripts and styles from this server only
/// (Converse's templates set inline styles, its OMEMO compiles a
/// WebAssembly module); no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
     media-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The most read from a file for one piece of a response.
const FILE_CHUNK: usize = 64 * 1024;

/// Which page: the certificate login, or the password login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Page {
    Certificate,
    Password,
}

/// A web chat page. The certificate login page gets the bare JID of the
/// certificate the page's connection presented, so the user types
/// nothing; without one it explains how to get one.
pub(crate) fn page(
    request: &Request<Incoming>,
    settings: &WebSettings,
    page: Page,
    certificate_jid: Option<String>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let html = match (page, certificate_jid) {
        _ if settings.assets.is_none() => MISSING.to_owned(),
        (Page::Password, _) => PASSWORD.to_owned(),
        (Page::Certificate, Some(jid)) => INDEX.replace("{{JID}}", &attribute_escape(&jid)),
        (Page::Certificate, None) => {
            NO_CERTIFICATE.replace("{{DOMAIN}}", &attribute_escape(&settings.domain))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(html)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    protect(headers, settings);
    response
}

/// The pages' own scripts.
pub(crate) fn script(
    request: &Request<Incoming>,
    settings: &WebSettings,
    page: Page,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let text = match page {
        Page::Certificate => CHAT_JS,
        Page::Password => PASSWORD_JS,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    protect(headers, settings);
    response
}

/// A file of Converse.js's `dist/`, streamed.
pub(crate) async fn asset(
    request: &Request<Incoming>,
    settings: &WebSettings,
    relative: &str,
) -> Response<Body> {
    let left = |response: Response<Full<Bytes>>| response.map(http_body_util::Either::Left);
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return left(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    let Some(root) = &settings.assets else {
        return left(plain(
            StatusCode::NOT_FOUND,
            "the web chat is not installed\n",
        ));
    };
    let Some(path) = safe_path(root, relative, settings.source_maps) else {
        return left(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return left(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let length = match file.metadata().await {
        Ok(metadata) if metadata.is_file() => metadata.len(),
        _ => return left(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    let body = if request.method() == Method::HEAD {
        FileBody::empty()
    } else {
        FileBody::new(file, length)
    };
    let mut response = Response::new(http_body_util::Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    protect(headers, settings);
    response
}

/// The headers every page and file carries.
pub(crate) fn protect(headers: &mut hyper::HeaderMap, settings: &WebSettings) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if settings.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// `root/relative` for plain names only: no `..`, no absolute paths, no
/// hidden files, no source maps unless wanted.
fn safe_path(root: &Path, relative: &str, source_maps: bool) -> Option<PathBuf> {
    let safe = !relative.is_empty()
        && relative.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !safe || (!source_maps && relative.ends_with(".map")) {
        return None;
    }
    Some(root.join(relative))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// A JID (or domain) inside an HTML attribute: only characters that
/// cannot end it.
fn attribute_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || "@.-_/+".contains(c) {
            escaped.push(c);
        } else {
            escaped.push_str(&format!("&#x{:x};", u32::from(c)));
        }
    }
    escaped
}

/// An HTML response with the web pages' headers.
pub(crate) fn html(
    settings: &WebSettings,
    status: StatusCode,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    protect(headers, settings);
    response
}

/// `template` with each `{{NAME}}` replaced by its value, in one pass (a
/// value that holds `{{…}}` stays as it is).
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 8192);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let known = after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, value)| (*value, end))
        });
        match known {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text for HTML content or a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A file sent in pieces of at most [`FILE_CHUNK`] bytes, each read only
/// when the connection has taken the one before: a client that does not
/// read holds one piece, not the file.
pub(crate) struct FileBody {
    file: Option<tokio::fs::File>,
    left: u64,
    buffer: Vec<u8>,
}

impl FileBody {
    fn new(file: tokio::fs::File, length: u64) -> Self {
        Self {
            file: Some(file),
            left: length,
            buffer: Vec::new(),
        }
    }

    fn empty() -> Self {
        Self {
            file: None,
            left: 0,
            buffer: Vec::new(),
        }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let Some(file) = this.file.as_mut() else {
            return Poll::Ready(None);
        };
        if this.left == 0 {
            this.file = None;
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left)
            .unwrap_or(FILE_CHUNK)
            .min(FILE_CHUNK);
        this.buffer.resize(want, 0);
        let mut read = tokio::io::ReadBuf::new(&mut this.buffer);
        match Pin::new(file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                this.file = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Ok(())) => {
                let filled = read.filled().len();
                if filled == 0 {
                    // The file got shorter than it said.
                    this.file = None;
                    return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
                }
                this.left -= filled as u64;
                let chunk = Bytes::copy_from_slice(&this.buffer[..filled]);
                if this.left == 0 {
                    this.file = None;
                    this.buffer = Vec::new();
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.file.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The vendored Converse.js is exactly what `web/converse/SHA256SUMS`
    /// lists (made by `scripts/vendor-web` from npm's checked package):
    /// every file with its hash, and nothing else.
    #[test]
    fn the_vendored_converse_matches_its_checksums() {
        use sha2::Digest as _;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/converse");
        let sums = std::fs::read_to_string(root.join("SHA256SUMS")).unwrap();
        let mut listed = Vec::new();
        for line in sums.lines() {
            let (hash, name) = line.split_once("  ").unwrap();
            let data = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let actual: String = sha2::Sha256::digest(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, hash, "{name} differs from its checksum");
            listed.push(name.to_owned());
        }
        let mut found = Vec::new();
        let mut directories = vec![root.clone()];
        while let Some(directory) = directories.pop() {
            for entry in std::fs::read_dir(&directory).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    directories.push(path);
                } else {
                    let name = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    if name != "SHA256SUMS" {
                        found.push(name);
                    }
                }
            }
        }
        listed.sort();
        found.sort();
        assert_eq!(found, listed, "files not in SHA256SUMS, or missing");
        assert!(listed.contains(&"LICENSE".to_owned()));
        assert!(listed.iter().all(|name| !name.ends_with(".map")));
    }

    #[test]
    fn only_plain_names_and_no_maps_by_default() {
        let root = Path::new("/assets");
        assert!(safe_path(root, "converse.min.js", false).is_some());
        assert!(safe_path(root, "chunkjs/locales/de.js", false).is_some());
        for bad in [
            "../x", "a/../b", ".hidden", "a//b", "", "/abs", "x.js.map", "a b",
        ] {
            assert!(safe_path(root, bad, false).is_none(), "{bad}");
        }
        assert!(safe_path(root, "x.js.map", true).is_some());
        assert_eq!(attribute_escape("a\"b<c>@d"), "a&#x22;b&#x3c;c&#x3e;@d");
    }
}
