//! The egress connector: the one way the server reaches the network.
//!
//! Host rules ([`rules`]) decide which URLs may be fetched, the resolver ([`resolver`]) asks DNS
//! only about allowlisted names and refuses an answer with any address outside the rules
//! ([`addresses`]), and the HTTP client ([`client`]) re-checks every redirect hop and caps the
//! body. Everything that needs files (name servers, CA certificates) is read when the connector
//! is built, before the sandbox is applied.

pub mod addresses;
pub mod client;
pub mod dns;
pub mod hosts;
pub mod resolver;
pub mod rules;

pub use client::{Connector, EgressError, Fetched};
pub use rules::{Denial, EgressRules};
