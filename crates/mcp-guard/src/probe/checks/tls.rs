//! Transport security: plain HTTP beyond loopback, TLS 1.0/1.1, HSTS.
//!
//! rustls cannot speak TLS 1.0 or 1.1, so the legacy check writes a
//! ClientHello itself: a fixed template offering only that version (no
//! `supported_versions` extension, which would offer 1.3), with a fresh
//! random, the common ciphers of the time, and SNI for names. The first
//! record back decides: a ServerHello for that version means the server
//! would complete the handshake; an alert, a close, or a ServerHello for
//! another version means it refuses. Each handshake counts as a request.

use rand::Rng as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use super::{Checked, Ctx, NotRun, Notes};
use crate::probe::Rule;

/// The legacy versions probed: (name, wire version).
const LEGACY: [(&str, u16); 2] = [("TLS 1.0", 0x0301), ("TLS 1.1", 0x0302)];
/// ECDHE and RSA suites with AES-CBC and 3DES, then the renegotiation SCSV.
const CIPHERS: [u16; 8] = [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x00ff];

/// Offers each legacy version in turn (https only).
pub(super) async fn legacy(ctx: &mut Ctx) -> Checked {
    if !ctx.target.https {
        return Err(NotRun::Skipped("http:// URL".into()));
    }
    let mut notes = Notes::default();
    let sni = ctx.target.host.parse::<std::net::IpAddr>().is_err().then(|| ctx.target.host.clone());
    for (name, version) in LEGACY {
        ctx.client.take().await?;
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let hello = client_hello(version, &random, sni.as_deref());
        let handshake = first_record(&ctx.target.host, ctx.target.port, &hello);
        match tokio::time::timeout(ctx.timeout(), handshake).await {
            Ok(Ok(reply)) => match classify(&reply, version) {
                Reply::ServerHello => {
                    let evidence = format!("a ClientHello offering only {name} -> ServerHello for {name}");
                    ctx.report(Rule::LegacyTls, &evidence);
                }
                Reply::Refused(why) => notes.push(format!("{name} refused ({why})")),
            },
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                notes.push(format!("{name} refused (connection reset)"));
            }
            Ok(Err(e)) => notes.unsure(format!("{name}: {e}")),
            Err(_) => notes.unsure(format!("{name}: no reply within {}s", ctx.timeout().as_secs_f32())),
        }
    }
    notes.finish()
}

/// The TLS family's result: plaintext, the legacy verdict, and HSTS on the answers seen.
pub(super) fn conclude(ctx: &mut Ctx) -> Checked {
    if !ctx.target.https {
        if ctx.target.loopback {
            return Err(NotRun::Skipped("plain http:// on a loopback host: TLS does not apply".into()));
        }
        let evidence = format!("{} is plain http:// to the non-loopback host {}", ctx.target.given, ctx.target.host);
        ctx.report(Rule::Plaintext, &evidence);
        return Err(NotRun::Skipped("http:// URL: no TLS to check".into()));
    }
    if let Some(legacy) = ctx.legacy_tls.take() {
        ctx.conclude(crate::probe::Family::Tls, legacy);
    }
    let answers: Vec<_> = ctx.client.seen.iter().filter(|s| ctx.target.same_origin(&s.url)).collect();
    let Some(first) = answers.first() else {
        return Err(NotRun::Skipped("no HTTPS answers to judge HSTS on".into()));
    };
    if answers.iter().any(|s| s.headers.contains_key(http::header::STRICT_TRANSPORT_SECURITY)) {
        return Ok("Strict-Transport-Security sent".into());
    }
    let evidence = format!(
        "no Strict-Transport-Security on {} HTTPS answers (e.g. the {} to {})",
        answers.len(),
        first.status.as_u16(),
        first.label
    );
    ctx.report(Rule::NoHsts, &evidence);
    Ok("no Strict-Transport-Security".into())
}

/// Sends `hello` and reads until the first record's handshake header (or the end).
async fn first_record(host: &str, port: u16, hello: &[u8]) -> std::io::Result<Vec<u8>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((host, port)).await?;
    stream.write_all(hello).await?;
    let mut reply = Vec::with_capacity(16);
    let mut buf = [0u8; 16];
    // Record header (5), handshake type and length (4), server_version (2).
    while reply.len() < 11 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply[0] != 0x16 {
            // An alert (or anything not a handshake) decides at its first byte.
            break;
        }
    }
    Ok(reply)
}

/// What the first record says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A ServerHello for the version offered.
    ServerHello,
    /// Anything else, and why.
    Refused(String),
}

pub(crate) fn classify(reply: &[u8], offered: u16) -> Reply {
    match reply {
        [] => Reply::Refused("connection closed".into()),
        [0x15, ..] => Reply::Refused("alert".into()),
        [0x16, _, _, _, _, 0x02, _, _, _, major, minor, ..] => {
            let chosen = u16::from_be_bytes([*major, *minor]);
            if chosen == offered {
                Reply::ServerHello
            } else {
                Reply::Refused(format!("ServerHello for version {chosen:#06x}"))
            }
        }
        _ => Reply::Refused("not a ServerHello".into()),
    }
}

/// A TLS ClientHello record offering only `version`.
pub(crate) fn client_hello(version: u16, random: &[u8; 32], sni: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = sni.filter(|n| n.len() < 256) {
        let name = name.as_bytes();
        let entry_len = 3 + name.len();
        put_u16(&mut extensions, 0x0000);
        put_u16(&mut extensions, entry_len as u16 + 2);
        put_u16(&mut extensions, entry_len as u16);
        extensions.push(0x00);
        put_u16(&mut extensions, name.len() as u16);
        extensions.extend_from_slice(name);
    }
    // supported_groups: x25519, secp256r1, secp384r1 (for the ECDHE suites).
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // ec_point_formats: uncompressed.
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);

    let mut hello = Vec::new();
    put_u16(&mut hello, version);
    hello.extend_from_slice(random);
    hello.push(0); // no session id
    put_u16(&mut hello, (CIPHERS.len() * 2) as u16);
    for cipher in CIPHERS {
        put_u16(&mut hello, cipher);
    }
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null only
    put_u16(&mut hello, extensions.len() as u16);
    hello.extend_from_slice(&extensions);

    let mut record = vec![0x16, 0x03, 0x01];
    put_u16(&mut record, hello.len() as u16 + 4);
    record.push(0x01); // client_hello
    record.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    record.extend_from_slice(&hello);
    record
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    /// Walks the record as a TLS parser would; returns the extension types.
    fn parse(record: &[u8], version: u16) -> Vec<u16> {
        assert_eq!(&record[..3], &[0x16, 0x03, 0x01]);
        assert_eq!(u16_at(record, 3), record.len() - 5, "record length");
        let hs = &record[5..];
        assert_eq!(hs[0], 0x01, "client_hello");
        assert_eq!(u32::from_be_bytes([0, hs[1], hs[2], hs[3]]) as usize, hs.len() - 4, "handshake length");
        let body = &hs[4..];
        assert_eq!(u16_at(body, 0), usize::from(version));
        let mut at = 2 + 32;
        at += 1 + usize::from(body[at]); // session id
        let ciphers = u16_at(body, at);
        assert!(ciphers > 0 && ciphers.is_multiple_of(2));
        at += 2 + ciphers;
        at += 1 + usize::from(body[at]); // compression
        let ext_len = u16_at(body, at);
        at += 2;
        assert_eq!(at + ext_len, body.len(), "extensions length");
        let mut types = Vec::new();
        while at < body.len() {
            types.push(u16_at(body, at) as u16);
            at += 4 + u16_at(body, at + 2);
        }
        assert_eq!(at, body.len(), "extensions end exactly");
        types
    }

    #[test]
    fn client_hellos_are_well_formed() {
        let random = [7u8; 32];
        for (_, version) in LEGACY {
            let record = client_hello(version, &random, Some("mcp.example.com"));
            let types = parse(&record, version);
            assert_eq!(types, [0x0000, 0x000a, 0x000b]);
            assert!(!types.contains(&0x002b), "no supported_versions");
            assert!(record.windows(15).any(|w| w == b"mcp.example.com"));
            assert_eq!(&record[11..43], &random);
            assert_eq!(parse(&client_hello(version, &random, None), version), [0x000a, 0x000b]);
        }
    }

    #[test]
    fn replies_are_classified() {
        let hello = [0x16, 0x03, 0x01, 0x00, 0x51, 0x02, 0x00, 0x00, 0x4d, 0x03, 0x01, 0xaa];
        assert_eq!(classify(&hello, 0x0301), Reply::ServerHello);
        assert!(matches!(classify(&hello, 0x0302), Reply::Refused(_)));
        assert_eq!(classify(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], 0x0301), Reply::Refused("alert".into()));
        assert_eq!(classify(&[], 0x0301), Reply::Refused("connection closed".into()));
        assert!(matches!(classify(b"HTTP/1.1 400", 0x0301), Reply::Refused(_)));
    }
}
