//! The web console under `/ui/`: recent alerts from an index the gateway keeps ([`index`]),
//! output health and dead-letter redrive, for signed-in users only.

pub mod config;
pub mod index;
