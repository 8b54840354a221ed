//! The read APIs: [`http`] (the JSON API the cf CLI uses) and [`grpc`]
//! (`logcache.v1.Egress` for Cloud Controller), both over a
//! [`crate::read::Reader`].

pub mod grpc;
pub mod http;
