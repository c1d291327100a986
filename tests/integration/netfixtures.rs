//! Network peers of the tests' own, on loopback only: a DNS server that answers from a table
//! and logs every name it is asked, and an HTTPS server with a certificate from a throwaway CA
//! that answers each path with a canned response and logs every request.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

/// A DNS server on 127.0.0.1 (UDP) answering A/AAAA from `records` (an entry `cname:NAME`
/// answers with a CNAME to NAME and no address); unknown names get NXDOMAIN.
pub struct DnsServer {
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    pub fn start(records: &[(&str, &[&str])]) -> Self {
        let records: HashMap<String, Vec<String>> = records
            .iter()
            .map(|(name, values)| {
                (
                    name.to_string(),
                    values.iter().map(|v| v.to_string()).collect(),
                )
            })
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (Arc::clone(&queries), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buffer[..n]) else {
                    continue;
                };
                let answer = answer(&request, &records, &log);
                let _ = socket.send_to(&answer, peer);
            }
        });
        DnsServer {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// Every name asked so far (lowercase, no trailing dot), in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

fn answer(
    request: &Message,
    records: &HashMap<String, Vec<String>>,
    log: &Mutex<Vec<String>>,
) -> Vec<u8> {
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let mut known = true;
    for query in &request.queries {
        let name = query.name().to_ascii().trim_end_matches('.').to_lowercase();
        log.lock().unwrap().push(name.clone());
        response.add_query(query.clone());
        match records.get(&name) {
            None => known = false,
            Some(values) => {
                for value in values {
                    if let Some(target) = value.strip_prefix("cname:") {
                        let target =
                            hickory_proto::rr::Name::from_ascii(format!("{target}.")).unwrap();
                        response.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::CNAME(hickory_proto::rr::rdata::CNAME(target)),
                        ));
                        continue;
                    }
                    let ip: IpAddr = value.parse().unwrap();
                    let wanted = matches!(
                        (ip, query.query_type()),
                        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
                    );
                    if wanted {
                        response.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::from(ip),
                        ));
                    }
                }
            }
        }
    }
    if !known {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response.to_vec().unwrap()
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A canned HTTP response.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            ..Reply::ok("status page")
        }
    }

    pub fn redirect(location: &str) -> Self {
        Reply {
            status: 302,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// A throwaway CA and a certificate it issued for `names`.
pub struct Pki {
    pub ca_pem: String,
    pub leaf_der: rustls::pki_types::CertificateDer<'static>,
    pub leaf_key_der: Vec<u8>,
}

impl Pki {
    pub fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcp-secure-server test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            leaf_der: leaf.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    /// Writes the CA certificate into `dir` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// An HTTPS server on 127.0.0.1 answering each path (without query) from `routes`; `{port}` in
/// a reply header stands for the server's port.
pub struct TlsServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    pub fn start(pki: &Pki, routes: HashMap<String, Reply>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.leaf_der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(pki.leaf_key_der.clone().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let routes = Arc::new(routes);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, routes, log) =
                    (Arc::clone(&config), Arc::clone(&routes), Arc::clone(&log));
                workers.push(std::thread::spawn(move || {
                    serve_one(stream, config, &routes, &log, port);
                }));
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        TlsServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Request targets (path and query) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_one(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &HashMap<String, Reply>,
    log: &Mutex<Vec<String>>,
    port: u16,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    log.lock().unwrap().push(target.clone());
    let path = target.split('?').next().unwrap_or("/");
    let reply = routes
        .get(path)
        .cloned()
        .unwrap_or_else(|| Reply::status(404));
    std::thread::sleep(reply.delay);
    let mut out = format!(
        "HTTP/1.1 {} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        // "{port}" in a header (a redirect's Location) is this server's own port.
        let value = value.replace("{port}", &port.to_string());
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    let _ = tls.write_all(&bytes);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
