//! XEP-0049: Private XML Storage (`jabber:iq:private`): a user keeps
//! elements on the server, one per namespace, that only they read.

/// The XEP-0049 namespace.
pub const NS: &str = "jabber:iq:private";

/// Namespaces nothing may be stored in (XEP-0049 §3: `not-acceptable`).
pub const RESERVED: &[&str] = &[sigil_xml::ns::CLIENT, sigil_xml::ns::SERVER, NS];
