//! A stand-in for the local agent's `loggregator.v2.Ingress` over mutual TLS
//! (server name `metron`): records every batch sent with `Send`, refuses the
//! streaming methods. Components under test point `AGENT_GRPC_ADDRESS` at it.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use envelope_proto::loggregator_v2::ingress_server::{Ingress, IngressServer};
use envelope_proto::loggregator_v2::{
    BatchSenderResponse, Envelope, EnvelopeBatch, IngressResponse, SendResponse,
};
use plumbing::tls::dev::DevPki;
use tokio::net::TcpListener;

/// Batches received with `Send`, in arrival order.
#[derive(Clone, Default)]
pub struct FakeAgent {
    batches: Arc<Mutex<Vec<EnvelopeBatch>>>,
}

impl FakeAgent {
    /// Serves on `listener` with `pki`'s `metron` identity (bind first when
    /// the component under test needs the address before the PKI exists).
    pub fn serve(listener: TcpListener, pki: &DevPki) -> Self {
        let agent = Self::default();
        let tls = plumbing::tls::server_config(&pki.files("metron")).unwrap();
        let incoming = plumbing::tls::grpc::serve_incoming(listener, Some(tls));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(IngressServer::new(agent.clone()))
                .serve_with_incoming(incoming),
        );
        agent
    }

    /// Binds a loopback port and serves on it.
    pub async fn start(pki: &DevPki) -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Self::serve(listener, pki), addr)
    }

    /// Every batch received so far.
    pub fn batches(&self) -> Vec<EnvelopeBatch> {
        self.batches.lock().unwrap().clone()
    }

    /// Every envelope received so far, batches flattened.
    pub fn envelopes(&self) -> Vec<Envelope> {
        self.batches().into_iter().flat_map(|b| b.batch).collect()
    }
}

#[tonic::async_trait]
impl Ingress for FakeAgent {
    async fn sender(
        &self,
        _r: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<IngressResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test agent"))
    }

    async fn batch_sender(
        &self,
        _r: tonic::Request<tonic::Streaming<EnvelopeBatch>>,
    ) -> Result<tonic::Response<BatchSenderResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test agent"))
    }

    async fn send(
        &self,
        r: tonic::Request<EnvelopeBatch>,
    ) -> Result<tonic::Response<SendResponse>, tonic::Status> {
        self.batches.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(SendResponse {}))
    }
}
