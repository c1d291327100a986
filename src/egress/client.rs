//! The HTTP client of the connector: reqwest over rustls (ring), with the compiled-in web PKI
//! roots plus `network.ca_certificates`, no proxy (proxy environment variables are ignored), the
//! allowlist resolver, a redirect policy that re-checks every hop, timeouts and a body cap.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;
use url::Url;

use super::resolver::{AllowlistResolver, DnsFailure, NameServers};
use super::rules::{Denial, EgressRules};
use crate::policy::Policy;

/// Time to set up a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a fetch failed; each variant's text says what happened and what to do.
#[derive(Debug, Error)]
pub enum EgressError {
    /// A policy rule refused the request, a redirect hop, a name or an address.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// DNS failed.
    #[error(transparent)]
    Dns(#[from] DnsFailure),
    /// The deadline passed.
    #[error("the request to {host} timed out; retry later")]
    Timeout {
        /// The host asked.
        host: String,
    },
    /// More redirects than `network.max_redirects`.
    #[error(
        "more than {0} redirects (network.max_redirects); the page redirects in a loop or too far"
    )]
    TooManyRedirects(u8),
    /// The body is longer than `limits.max_response_bytes`.
    #[error(
        "the response from {host} is larger than {limit} bytes (limits.max_response_bytes); it was cut off and not used"
    )]
    TooLarge {
        /// The host.
        host: String,
        /// The cap.
        limit: usize,
    },
    /// Connecting, TLS or HTTP failed.
    #[error("cannot fetch from {host}: {detail}")]
    Transport {
        /// The host.
        host: String,
        /// The cause chain.
        detail: String,
    },
    /// The connector could not be built (start-up).
    #[error("{0}")]
    Setup(String),
}

/// A response: status, the URL after redirects, and the (capped) body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// HTTP status code.
    pub status: u16,
    /// The last URL (after redirects).
    pub url: Url,
    /// The body, at most `limits.max_response_bytes`.
    pub body: Vec<u8>,
}

/// The one way out to the network.
#[derive(Debug)]
pub struct Connector {
    rules: Arc<EgressRules>,
    http: reqwest::Client,
    max_response_bytes: usize,
}

/// Marker error for the redirect policy.
#[derive(Debug, Error)]
#[error("too many redirects")]
struct RedirectLimit(u8);

impl Connector {
    /// Builds the connector for `policy`: reads the CA files and the name servers now.
    ///
    /// # Errors
    /// [`EgressError::Setup`] naming the file or setting that is wrong.
    pub fn new(policy: &Policy) -> Result<Self, EgressError> {
        let network = &policy.network;
        let rules = Arc::new(EgressRules::new(network));
        let tls = tls_config(&network.ca_certificates)?;
        let servers = NameServers::from_policy(&network.dns_servers);
        let resolver = AllowlistResolver::new(Arc::clone(&rules), &servers);
        let max_redirects = network.max_redirects;
        let hop_rules = Arc::clone(&rules);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > usize::from(max_redirects) {
                return attempt.error(RedirectLimit(max_redirects));
            }
            match hop_rules.check_url(attempt.url()) {
                Ok(_) => attempt.follow(),
                Err(denial) => attempt.error(Denial(format!("redirect refused: {}", denial.0))),
            }
        });
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            // The query string of one hop is nobody else's business.
            .referer(false)
            .dns_resolver(Arc::new(resolver))
            .redirect(redirects)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("mcp-secure-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EgressError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Connector {
            rules,
            http,
            max_response_bytes: policy.limits.max_response_bytes,
        })
    }

    /// The rules this connector enforces.
    pub fn rules(&self) -> &EgressRules {
        &self.rules
    }

    /// GETs `url` within `timeout`: checks it, follows allowed redirects, reads at most
    /// `limits.max_response_bytes`.
    ///
    /// # Errors
    /// See [`EgressError`]; a non-2xx status is not an error here.
    pub async fn get(&self, url: Url, timeout: Duration) -> Result<Fetched, EgressError> {
        self.rules.check_url(&url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let work = async {
            let mut response = self
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(|e| classify(&e, &host))?;
            let status = response.status().as_u16();
            let final_url = response.url().clone();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, &host))? {
                if body.len() + chunk.len() > self.max_response_bytes {
                    return Err(EgressError::TooLarge {
                        host: host.clone(),
                        limit: self.max_response_bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                status,
                url: final_url,
                body,
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::Timeout { host }),
        }
    }
}

/// Finds our own errors inside reqwest's chain; everything else is described by its chain.
fn classify(error: &reqwest::Error, host: &str) -> EgressError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut chain = Vec::new();
    while let Some(current) = source {
        if let Some(denial) = current.downcast_ref::<Denial>() {
            return EgressError::Denied(denial.clone());
        }
        if let Some(failure) = current.downcast_ref::<super::resolver::ResolveFailure>() {
            return match failure {
                super::resolver::ResolveFailure::Denied(denial) => {
                    EgressError::Denied(denial.clone())
                }
                super::resolver::ResolveFailure::Dns(dns) => EgressError::Dns(dns.clone()),
            };
        }
        if let Some(limit) = current.downcast_ref::<RedirectLimit>() {
            return EgressError::TooManyRedirects(limit.0);
        }
        let text = current.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = current.source();
    }
    if error.is_timeout() {
        return EgressError::Timeout {
            host: host.to_owned(),
        };
    }
    EgressError::Transport {
        host: host.to_owned(),
        detail: chain.join(": "),
    }
}

/// rustls with the ring provider, TLS 1.2 and 1.3, web PKI roots plus the policy's CA files.
fn tls_config(ca_files: &[std::path::PathBuf]) -> Result<rustls::ClientConfig, EgressError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (i, path) in ca_files.iter().enumerate() {
        let key = format!("network.ca_certificates[{i}]");
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|e| {
                EgressError::Setup(format!(
                    "{key}: cannot read {}: {e}; give a PEM file of CA certificates",
                    path.display()
                ))
            })?;
        if certificates.is_empty() {
            return Err(EgressError::Setup(format!(
                "{key}: {} holds no PEM certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| {
                EgressError::Setup(format!(
                    "{key}: a certificate in {} is not a usable CA: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EgressError::Setup(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
