//! What switchd serves and asks: its HTTP API on a Unix socket, the Docker Engine's network
//! and IPAM plugin, and the Docker Engine's own API (for container names).

pub mod docker_api;
pub mod http;
pub mod plugin;
