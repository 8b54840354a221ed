//! TEMPORARY STUB (not committed): replaced by the promql helper's module.
#![allow(missing_docs, dead_code, unused_variables)]
use std::sync::Arc;
use std::time::Duration;
pub struct Engine;
#[derive(Debug)]
pub struct QueryError;
impl Engine {
    pub fn new(r: Arc<dyn crate::read::Reader>, t: Duration) -> Self {
        Engine
    }
}
pub fn source_ids(q: &str) -> Result<Vec<String>, QueryError> {
    Ok(vec![])
}
pub async fn http_instant(e: &Engine, q: &str) -> (http::StatusCode, String) {
    (http::StatusCode::OK, String::new())
}
pub async fn http_range(e: &Engine, q: &str) -> (http::StatusCode, String) {
    (http::StatusCode::OK, String::new())
}
