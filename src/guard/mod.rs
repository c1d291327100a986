//! Guardrails on the `tools/call` path. Today: argument validation against the tool's schema.

pub mod schema;

pub use schema::ArgumentSchema;
