//! HTTPS end to end: TLS 1.3 with HTTP/2 by ALPN, TLS 1.2, a refused
//! TLS 1.1 ClientHello, HSTS only over TLS, and certificate reloads that
//! leave open connections alone (SIGHUP on the real binary: the
//! `mcp-guard` crate's `tests/reload.rs`). Certificates: `tests/fixtures/tls` (a test
//! CA and two server certificates for localhost/127.0.0.1, see `gen.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use mcp_guard::{
    config::{Overrides, load_from_str},
    server::{self, Running},
};
use rustls::{
    ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The leaf (first) certificate of a PEM chain.
fn leaf(pem: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(pem).unwrap().next().unwrap().unwrap()
}

/// A gateway on a free loopback port serving HTTPS with these files.
async fn start_tls(cert: &Path, key: &Path) -> Running {
    let toml = format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.display().to_string(), key.display().to_string());
    let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
    let config = load_from_str(&toml, "test.toml", std::iter::empty(), &overrides).expect("valid test config");
    server::start(config).await.expect("gateway starts")
}

/// A scratch directory holding `cert.pem` and `key.pem`, copies of a fixture
/// pair, so a test can replace them; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str, cert: &str, key: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mcp-guard-e2e-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scratch = Scratch(dir);
        scratch.install(cert, key);
        scratch
    }

    /// Replaces the files as a renewal would: write aside, then rename.
    fn install(&self, cert: &str, key: &str) {
        for (from, to) in [(fixture(cert), self.cert()), (fixture(key), self.key())] {
            let aside = to.with_extension("tmp");
            std::fs::copy(from, &aside).unwrap();
            std::fs::rename(aside, to).unwrap();
        }
    }

    fn cert(&self) -> PathBuf {
        self.0.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.0.join("key.pem")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A rustls client trusting only the test CA, limited to `versions`.
fn client_config(versions: &[&'static SupportedProtocolVersion], alpn: &[&[u8]]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(leaf(&fixture("ca.pem"))).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

async fn connect(port: u16, config: ClientConfig) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake")
}

/// An HTTP/1.1 connection over TLS 1.3.
async fn connect_h1(port: u16) -> TlsStream<TcpStream> {
    connect(port, client_config(&[&rustls::version::TLS13], &[b"http/1.1"])).await
}

fn peer_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// `GET /health` over an HTTP/1.1 connection left open for more requests.
async fn health(stream: &mut TlsStream<TcpStream>, port: u16) -> String {
    let request = format!("GET /health HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer to GET /health");
    String::from_utf8(answer).unwrap()
}

/// reqwest with rustls, trusting only the test CA. No prior knowledge of
/// HTTP/2: if the answer is HTTP/2, ALPN negotiated it.
fn https_client() -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca]).build().unwrap()
}

async fn post_init(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(common::INIT)
        .send()
        .await
        .expect("gateway answers over HTTPS")
}

#[tokio::test]
async fn tls13_negotiates_http2_by_alpn_and_sends_hsts() {
    let running = start_tls(&fixture("a.pem"), &fixture("a.key")).await;
    let port = running.local_addr().port();

    let res = post_init(&https_client(), &format!("https://localhost:{port}/mcp")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let hsts = res.headers().get("strict-transport-security").expect("HSTS over TLS");
    assert!(hsts.to_str().unwrap().starts_with("max-age="), "{hsts:?}");
    assert!(res.text().await.unwrap().contains("\"protocolVersion\""));

    // What a default client negotiates: TLS 1.3 and h2, the server's first choice.
    let stream = connect(port, client_config(rustls::ALL_VERSIONS, &[b"h2", b"http/1.1"])).await;
    let (_, session) = stream.get_ref();
    assert_eq!(session.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(peer_leaf(&stream), leaf(&fixture("a.pem")));
    running.shutdown().await;

    // Plain HTTP: no HSTS (browsers ignore it there, and it would be a false promise).
    let plain = common::Gateway::demo().await;
    let res = common::post(&plain.url, None, common::INIT).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_11);
    assert!(res.headers().get("strict-transport-security").is_none());
    plain.shutdown().await;
}

#[tokio::test]
async fn tls12_client_is_served() {
    let running = start_tls(&fixture("a.pem"), &fixture("a.key")).await;
    let port = running.local_addr().port();
    let mut stream = connect(port, client_config(&[&rustls::version::TLS12], &[b"http/1.1"])).await;
    let (_, session) = stream.get_ref();
    assert_eq!(session.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = health(&mut stream, port).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("strict-transport-security: max-age="), "{answer}");

    // TLS 1.2 with h2 too.
    let stream = connect(port, client_config(&[&rustls::version::TLS12], &[b"h2"])).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    running.shutdown().await;
}

/// A TLS 1.1 ClientHello: record and hello version 0x0302, no
/// `supported_versions` extension, CBC suites. With `sigalgs`, it carries
/// the `signature_algorithms` extension (TLS 1.2's, which a TLS 1.1 client
/// does not send but rustls requires before it looks at the version).
fn tls11_client_hello(sigalgs: bool) -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version: TLS 1.1
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x00, 0x06, 0x00, 0x2f, 0x00, 0x35, 0xc0, 0x13]);
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null only
    if sigalgs {
        // extensions (10 bytes): signature_algorithms = rsa_pkcs1_sha256, ecdsa_secp256r1_sha256
        hello.extend_from_slice(&[0x00, 0x0a, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x01, 0x04, 0x03]);
    }
    let mut handshake = vec![0x01, 0x00]; // ClientHello, 24-bit length
    handshake.extend_from_slice(&u16::try_from(hello.len()).unwrap().to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02]; // handshake record, TLS 1.1
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a ClientHello; returns everything the server sent before closing.
async fn answer_to(port: u16, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    answer
}

#[tokio::test]
async fn tls11_client_hello_is_refused_with_a_fatal_alert() {
    let running = start_tls(&fixture("a.pem"), &fixture("a.key")).await;
    let port = running.local_addr().port();
    // The server sends exactly one alert record and closes the connection,
    // no ServerHello: type 0x15 (alert), length 2, level 2 (fatal), then the
    // description. For the version itself: 70 (protocol_version).
    let answer = answer_to(port, &tls11_client_hello(true)).await;
    assert_eq!(answer.len(), 7, "one alert record: {answer:02x?}");
    assert_eq!(answer[0], 0x15, "an alert record: {answer:02x?}");
    assert_eq!(answer[3..], [0x00, 0x02, 0x02, 70], "fatal protocol_version: {answer:02x?}");
    // A TLS 1.1 hello without TLS 1.2's signature_algorithms extension, as
    // real TLS 1.1 clients send it, is refused one check earlier: 40
    // (handshake_failure).
    let answer = answer_to(port, &tls11_client_hello(false)).await;
    assert_eq!(answer.len(), 7, "one alert record: {answer:02x?}");
    assert_eq!(answer[0], 0x15, "an alert record: {answer:02x?}");
    assert_eq!(answer[3..], [0x00, 0x02, 0x02, 40], "fatal handshake_failure: {answer:02x?}");

    // Counted, and the gateway still serves.
    let res = https_client().get(format!("https://localhost:{port}/metrics")).send().await.unwrap();
    let text = res.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("mcp_guard_tls_handshake_failures_total{reason=\"error\"}"))
        .unwrap_or_else(|| panic!("handshake failure counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{line}");
    running.shutdown().await;
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let scratch = Scratch::new("reload", "a.pem", "a.key");
    let running = start_tls(&scratch.cert(), &scratch.key()).await;
    let port = running.local_addr().port();
    let (a, b) = (leaf(&fixture("a.pem")), leaf(&fixture("b.pem")));

    let mut before = connect_h1(port).await;
    assert_eq!(peer_leaf(&before), a);
    assert!(health(&mut before, port).await.starts_with("HTTP/1.1 200"));

    scratch.install("b.pem", "b.key");
    running.reload_tls().expect("reload");
    let mut after = connect_h1(port).await;
    assert_eq!(peer_leaf(&after), b, "a new connection gets the new certificate");
    assert!(health(&mut after, port).await.starts_with("HTTP/1.1 200"));
    // The connection opened before the reload carries on, with its certificate.
    assert!(health(&mut before, port).await.starts_with("HTTP/1.1 200"));
    assert_eq!(peer_leaf(&before), a);

    // A broken certificate file: the reload fails naming it, b stays.
    std::fs::write(scratch.cert(), "not a certificate").unwrap();
    let error = running.reload_tls().expect_err("garbage certificate").to_string();
    assert!(error.starts_with("tls.cert: "), "{error}");
    assert!(error.contains(&scratch.cert().display().to_string()), "{error}");
    assert_eq!(peer_leaf(&connect_h1(port).await), b);

    // A key that is not the certificate's: refused, naming `tls.key`.
    std::fs::copy(fixture("b.pem"), scratch.cert()).unwrap();
    std::fs::copy(fixture("a.key"), scratch.key()).unwrap();
    let error = running.reload_tls().expect_err("mismatched key").to_string();
    assert!(error.starts_with("tls.key: ") && error.contains("does not match"), "{error}");
    let mut last = connect_h1(port).await;
    assert_eq!(peer_leaf(&last), b);
    assert!(health(&mut last, port).await.starts_with("HTTP/1.1 200"));
    // And both old connections still work after the failed reloads.
    assert!(health(&mut after, port).await.starts_with("HTTP/1.1 200"));
    running.shutdown().await;
}

#[tokio::test]
async fn unusable_certificate_or_key_fails_startup_naming_the_setting() {
    let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
    let start = |cert: PathBuf, key: PathBuf| {
        let toml = format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.display().to_string(), key.display().to_string());
        let config = load_from_str(&toml, "test.toml", std::iter::empty(), &overrides).expect("valid test config");
        async move { server::start(config).await.expect_err("startup refused").to_string() }
    };
    // A key where the certificate should be: no CERTIFICATE block.
    let error = start(fixture("a.key"), fixture("a.key")).await;
    assert!(error.starts_with("tls.cert: ") && error.contains("a.key"), "{error}");
    // A certificate where the key should be.
    let error = start(fixture("a.pem"), fixture("a.pem")).await;
    assert!(error.starts_with("tls.key: ") && error.contains("a.pem"), "{error}");
    // A key from another pair.
    let error = start(fixture("a.pem"), fixture("b.key")).await;
    assert!(error.starts_with("tls.key: ") && error.contains("does not match"), "{error}");
}
