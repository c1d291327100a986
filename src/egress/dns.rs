//! A small stub resolver: A and AAAA queries over UDP (TCP when the answer is truncated) to the
//! configured name servers, with messages encoded by `hickory-proto`.
//!
//! It exists because a general resolver follows CNAME chains by itself: an answer for an
//! allowlisted name could make it query any other name, which would let a DNS answer send
//! packets about names the policy never allowed. Here every name that is queried, including
//! each CNAME target, is first passed to the caller's check.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one server has to answer one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// CNAME links followed within one lookup.
const MAX_CNAMES: usize = 8;
/// Largest UDP answer read (EDNS is not used, so 512 is the protocol's own limit).
const UDP_BUFFER: usize = 4096;

/// Why a lookup gave no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The caller's check refused a name (the queried name or a CNAME target).
    Refused(String),
    /// DNS itself failed; the text says how.
    Failed(String),
}

/// Name servers and the exchange with them.
#[derive(Debug, Clone)]
pub struct StubResolver {
    servers: Vec<SocketAddr>,
}

impl StubResolver {
    /// A resolver asking `servers` in order.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        StubResolver { servers }
    }

    /// The addresses of `name` (A and AAAA). `allow` is asked about every name before it is
    /// queried, and about every CNAME target before it is followed.
    ///
    /// # Errors
    /// A refused name, or a DNS failure (no server answered, NXDOMAIN, no address).
    pub async fn lookup(
        &self,
        name: &str,
        allow: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<Vec<IpAddr>, LookupError> {
        let (v4, v6) = tokio::join!(
            self.lookup_type(name, RecordType::A, allow),
            self.lookup_type(name, RecordType::AAAA, allow)
        );
        match (v4, v6) {
            (Err(LookupError::Refused(why)), _) | (_, Err(LookupError::Refused(why))) => {
                Err(LookupError::Refused(why))
            }
            (Ok(mut a), Ok(aaaa)) => {
                a.extend(aaaa);
                if a.is_empty() {
                    Err(LookupError::Failed("the name has no address".into()))
                } else {
                    Ok(a)
                }
            }
            (Ok(a), Err(_)) if !a.is_empty() => Ok(a),
            (Err(_), Ok(aaaa)) if !aaaa.is_empty() => Ok(aaaa),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    async fn lookup_type(
        &self,
        name: &str,
        record_type: RecordType,
        allow: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<Vec<IpAddr>, LookupError> {
        let mut current = name.to_owned();
        for _ in 0..=MAX_CNAMES {
            allow(&current).map_err(LookupError::Refused)?;
            let answer = self.query(&current, record_type).await?;
            if answer.metadata.response_code == ResponseCode::NXDomain {
                return Err(LookupError::Failed(format!(
                    "{current} does not exist (NXDOMAIN)"
                )));
            }
            // Follow the CNAME chain inside this answer, checking every target.
            let mut target = current.clone();
            let mut hops = 0;
            loop {
                let next = answer.answers.iter().find_map(|record| match &record.data {
                    RData::CNAME(alias) if same_name(&record.name, &target) => {
                        Some(plain(&alias.0))
                    }
                    _ => None,
                });
                let Some(next) = next else { break };
                hops += 1;
                if hops > MAX_CNAMES {
                    return Err(LookupError::Failed(format!(
                        "CNAME chain of {name} is too long"
                    )));
                }
                allow(&next).map_err(|why| {
                    LookupError::Refused(format!("{target} is an alias (CNAME) of {next}: {why}"))
                })?;
                target = next;
            }
            let addresses: Vec<IpAddr> = answer
                .answers
                .iter()
                .filter(|record| same_name(&record.name, &target))
                .filter_map(|record| match &record.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect();
            if !addresses.is_empty() || target == current {
                return Ok(addresses);
            }
            // The answer stops at an (allowed) alias: ask for the alias itself.
            current = target;
        }
        Err(LookupError::Failed(format!(
            "CNAME chain of {name} is too long"
        )))
    }

    /// One query to the first server that answers.
    async fn query(&self, name: &str, record_type: RecordType) -> Result<Message, LookupError> {
        let fqdn = Name::from_ascii(format!("{name}."))
            .map_err(|e| LookupError::Failed(format!("{name} is not a DNS name ({e})")))?;
        if self.servers.is_empty() {
            return Err(LookupError::Failed(
                "no name servers are configured; set network.dns_servers in the policy".into(),
            ));
        }
        let mut last_error = String::new();
        for server in &self.servers {
            match tokio::time::timeout(QUERY_TIMEOUT, exchange(*server, &fqdn, record_type)).await {
                Ok(Ok(answer)) => match answer.metadata.response_code {
                    ResponseCode::NoError | ResponseCode::NXDomain => return Ok(answer),
                    code => last_error = format!("{server} answered {code}"),
                },
                Ok(Err(error)) => last_error = format!("{server}: {error}"),
                Err(_) => last_error = format!("{server} did not answer within 5 s"),
            }
        }
        Err(LookupError::Failed(last_error))
    }
}

fn same_name(a: &Name, b: &str) -> bool {
    plain(a).eq_ignore_ascii_case(b)
}

/// A name as text, lowercase, without the trailing dot.
fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    // A failed read leaves zeros: the answer is still matched on id and question.
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    u16::from_ne_bytes(bytes)
}

/// Sends one query to `server` (UDP, then TCP if the answer is truncated) and returns the
/// answer that matches it.
async fn exchange(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
) -> std::io::Result<Message> {
    let id = random_id();
    let mut request = Message::new(id, MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(name.clone(), record_type));
    let bytes = request
        .to_vec()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buffer = vec![0u8; UDP_BUFFER];
    let answer = loop {
        let n = socket.recv(&mut buffer).await?;
        // Anything that is not the answer to this question (late or forged) is ignored.
        if let Ok(answer) = Message::from_vec(&buffer[..n])
            && answers(&answer, id, name, record_type)
        {
            break answer;
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let length = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    let length = usize::from(stream.read_u16().await?);
    let mut reply = vec![0u8; length];
    stream.read_exact(&mut reply).await?;
    let answer = Message::from_vec(&reply).map_err(|e| std::io::Error::other(e.to_string()))?;
    if answers(&answer, id, name, record_type) {
        Ok(answer)
    } else {
        Err(std::io::Error::other(
            "the TCP answer does not match the question",
        ))
    }
}

/// Whether `answer` is the response to our query (id, type and name; names compare
/// case-insensitively).
fn answers(answer: &Message, id: u16, name: &Name, record_type: RecordType) -> bool {
    answer.metadata.id == id
        && answer.metadata.message_type == MessageType::Response
        && answer.queries.len() == 1
        && answer.queries[0].query_type() == record_type
        && answer.queries[0].name() == name
}
