//! Wire-compatibility proof for the raw (`Bytes`) gRPC services: a raw client
//! talks to the prost-typed generated server, and a typed client talks to the
//! raw server, over real plaintext HTTP/2 on 127.0.0.1, on the same paths.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use envelope_proto::loggregator_v2::{
    self as v2, EgressBatchRequest, EgressRequest, Envelope, EnvelopeBatch, Selector,
};
use envelope_proto::plumbing_v1::{self, EnvelopeData, PushResponse};
use envelope_proto::raw;
use futures::StreamExt;
use prost::Message;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

fn envelope(i: i64) -> Envelope {
    Envelope {
        timestamp: 1_700_000_000_000_000_000 + i,
        source_id: format!("app-{i}"),
        instance_id: "0".into(),
        tags: [("source_type".to_string(), "APP/PROC/WEB".to_string())].into(),
        message: Some(v2::envelope::Message::Log(v2::Log {
            payload: Bytes::from(format!("line {i}")),
            r#type: 1,
        })),
        ..Default::default()
    }
}

fn batch(from: i64, n: i64) -> EnvelopeBatch {
    EnvelopeBatch {
        batch: (from..from + n).map(envelope).collect(),
    }
}

async fn serve<S>(svc: S) -> SocketAddr
where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

// ---- typed servers recording what they receive ----

#[derive(Clone, Default)]
struct TypedIngress {
    envelopes: Arc<Mutex<Vec<Envelope>>>,
    batches: Arc<Mutex<Vec<EnvelopeBatch>>>,
}

#[tonic::async_trait]
impl v2::ingress_server::Ingress for TypedIngress {
    async fn sender(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<v2::IngressResponse>, Status> {
        let mut s = request.into_inner();
        while let Some(e) = s.next().await {
            self.envelopes.lock().expect("lock").push(e?);
        }
        Ok(Response::new(v2::IngressResponse {}))
    }

    async fn batch_sender(
        &self,
        request: Request<Streaming<EnvelopeBatch>>,
    ) -> Result<Response<v2::BatchSenderResponse>, Status> {
        let mut s = request.into_inner();
        while let Some(b) = s.next().await {
            self.batches.lock().expect("lock").push(b?);
        }
        Ok(Response::new(v2::BatchSenderResponse {}))
    }

    async fn send(
        &self,
        request: Request<EnvelopeBatch>,
    ) -> Result<Response<v2::SendResponse>, Status> {
        self.batches
            .lock()
            .expect("lock")
            .push(request.into_inner());
        Ok(Response::new(v2::SendResponse {}))
    }
}

#[derive(Clone, Default)]
struct TypedEgress {
    requests: Arc<Mutex<Vec<EgressBatchRequest>>>,
}

type Boxed<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl v2::egress_server::Egress for TypedEgress {
    type ReceiverStream = Boxed<Envelope>;
    type BatchedReceiverStream = Boxed<EnvelopeBatch>;

    async fn receiver(
        &self,
        request: Request<EgressRequest>,
    ) -> Result<Response<Self::ReceiverStream>, Status> {
        let req = request.into_inner();
        let n = req.selectors.len() as i64;
        Ok(Response::new(Box::pin(futures::stream::iter(
            (0..n).map(|i| Ok(envelope(i))),
        ))))
    }

    async fn batched_receiver(
        &self,
        request: Request<EgressBatchRequest>,
    ) -> Result<Response<Self::BatchedReceiverStream>, Status> {
        self.requests
            .lock()
            .expect("lock")
            .push(request.into_inner());
        Ok(Response::new(Box::pin(futures::stream::iter(vec![
            Ok(batch(0, 3)),
            Ok(batch(3, 2)),
        ]))))
    }
}

#[derive(Clone, Default)]
struct TypedPusher {
    received: Arc<Mutex<Vec<EnvelopeData>>>,
}

#[tonic::async_trait]
impl plumbing_v1::doppler_ingestor_server::DopplerIngestor for TypedPusher {
    async fn pusher(
        &self,
        request: Request<Streaming<EnvelopeData>>,
    ) -> Result<Response<PushResponse>, Status> {
        let mut s = request.into_inner();
        while let Some(d) = s.next().await {
            self.received.lock().expect("lock").push(d?);
        }
        Ok(Response::new(PushResponse {}))
    }
}

// ---- raw servers recording the bytes they receive ----

#[derive(Clone, Default)]
struct RawIngress {
    frames: Arc<Mutex<Vec<(&'static str, Bytes)>>>,
}

#[tonic::async_trait]
impl raw::ingress_server::Ingress for RawIngress {
    async fn sender(&self, request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut s = request.into_inner();
        while let Some(b) = s.next().await {
            self.frames.lock().expect("lock").push(("sender", b?));
        }
        Ok(Response::new(Bytes::new()))
    }

    async fn batch_sender(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        let mut s = request.into_inner();
        while let Some(b) = s.next().await {
            self.frames.lock().expect("lock").push(("batch_sender", b?));
        }
        Ok(Response::new(Bytes::new()))
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Status> {
        self.frames
            .lock()
            .expect("lock")
            .push(("send", request.into_inner()));
        Err(Status::unimplemented(
            "this endpoint is not yet implemented",
        ))
    }
}

#[derive(Clone, Default)]
struct RawEgress {
    requests: Arc<Mutex<Vec<Bytes>>>,
}

#[tonic::async_trait]
impl raw::egress_server::Egress for RawEgress {
    type ReceiverStream = Boxed<Bytes>;
    type BatchedReceiverStream = Boxed<Bytes>;

    async fn receiver(&self, _request: Request<Bytes>) -> Result<Response<Boxed<Bytes>>, Status> {
        Err(Status::unimplemented("use BatchedReceiver instead"))
    }

    async fn batched_receiver(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Boxed<Bytes>>, Status> {
        self.requests
            .lock()
            .expect("lock")
            .push(request.into_inner());
        // Forward already-encoded envelopes as a batch without re-encoding.
        let items: Vec<Bytes> = (0..4)
            .map(|i| Bytes::from(envelope(i).encode_to_vec()))
            .collect();
        let mut out = bytes::BytesMut::new();
        envelope_proto::batch::encode(&items, &mut out);
        Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(
            out.freeze(),
        )]))))
    }
}

#[derive(Clone, Default)]
struct RawPusher {
    frames: Arc<Mutex<Vec<Bytes>>>,
}

#[tonic::async_trait]
impl raw::doppler_ingestor_server::DopplerIngestor for RawPusher {
    async fn pusher(&self, request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut s = request.into_inner();
        while let Some(b) = s.next().await {
            self.frames.lock().expect("lock").push(b?);
        }
        Ok(Response::new(Bytes::new()))
    }
}

// ---- tests ----

#[tokio::test]
async fn raw_ingress_client_talks_to_typed_server() {
    let typed = TypedIngress::default();
    let addr = serve(v2::ingress_server::IngressServer::new(typed.clone())).await;
    let mut client = raw::ingress_client::IngressClient::new(channel(addr).await);

    let sent: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(envelope(i).encode_to_vec()))
        .collect();
    let resp = client
        .sender(futures::stream::iter(sent.clone()))
        .await
        .expect("sender");
    assert!(resp.into_inner().is_empty(), "IngressResponse{{}} is empty");
    let got = typed.envelopes.lock().expect("lock").clone();
    assert_eq!(got, (0..5).map(envelope).collect::<Vec<_>>());

    let b = Bytes::from(batch(10, 3).encode_to_vec());
    client
        .batch_sender(futures::stream::iter(vec![b.clone(), b.clone()]))
        .await
        .expect("batch_sender");
    client.send(b).await.expect("send");
    let got = typed.batches.lock().expect("lock").clone();
    assert_eq!(got, vec![batch(10, 3); 3]);
}

#[tokio::test]
async fn typed_ingress_client_talks_to_raw_server() {
    let raw_srv = RawIngress::default();
    let addr = serve(raw::ingress_server::IngressServer::new(raw_srv.clone())).await;
    let mut client = v2::ingress_client::IngressClient::new(channel(addr).await);

    client
        .sender(futures::stream::iter((0..3).map(envelope)))
        .await
        .expect("sender");
    client
        .batch_sender(futures::stream::iter(vec![batch(0, 2)]))
        .await
        .expect("batch_sender");
    let status = client.send(batch(5, 1)).await.expect_err("send refused");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), "this endpoint is not yet implemented");

    let frames = raw_srv.frames.lock().expect("lock").clone();
    let expected: Vec<(&str, Bytes)> = (0..3)
        .map(|i| ("sender", Bytes::from(envelope(i).encode_to_vec())))
        .chain([("batch_sender", Bytes::from(batch(0, 2).encode_to_vec()))])
        .chain([("send", Bytes::from(batch(5, 1).encode_to_vec()))])
        .collect();
    assert_eq!(frames, expected);
    // The raw batch splits into exactly the typed client's envelope encodings.
    let split: Vec<Bytes> = envelope_proto::batch::split(&frames[3].1)
        .expect("split")
        .collect();
    assert_eq!(
        split,
        (0..2)
            .map(|i| Bytes::from(envelope(i).encode_to_vec()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn raw_egress_client_talks_to_typed_server() {
    let typed = TypedEgress::default();
    let addr = serve(v2::egress_server::EgressServer::new(typed.clone())).await;
    let mut client = raw::egress_client::EgressClient::new(channel(addr).await);

    let req = EgressBatchRequest {
        shard_id: "shard".into(),
        selectors: vec![Selector {
            source_id: "app-1".into(),
            message: Some(v2::selector::Message::Log(v2::LogSelector {})),
        }],
        use_preferred_tags: true,
        ..Default::default()
    };
    let mut stream = client
        .batched_receiver(Bytes::from(req.encode_to_vec()))
        .await
        .expect("batched_receiver")
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(EnvelopeBatch::decode(item.expect("item")).expect("decode"));
    }
    assert_eq!(got, vec![batch(0, 3), batch(3, 2)]);
    assert_eq!(*typed.requests.lock().expect("lock"), vec![req]);

    let req = EgressRequest {
        selectors: vec![Selector::default(); 2],
        ..Default::default()
    };
    let mut stream = client
        .receiver(Bytes::from(req.encode_to_vec()))
        .await
        .expect("receiver")
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(Envelope::decode(item.expect("item")).expect("decode"));
    }
    assert_eq!(got, vec![envelope(0), envelope(1)]);
}

#[tokio::test]
async fn typed_egress_client_talks_to_raw_server() {
    let raw_srv = RawEgress::default();
    let addr = serve(raw::egress_server::EgressServer::new(raw_srv.clone())).await;
    let mut client = v2::egress_client::EgressClient::new(channel(addr).await);

    let req = EgressBatchRequest {
        shard_id: "s".into(),
        deterministic_name: "d".into(),
        ..Default::default()
    };
    let mut stream = client
        .batched_receiver(req.clone())
        .await
        .expect("batched_receiver")
        .into_inner();
    let first = stream.next().await.expect("one batch").expect("ok");
    assert_eq!(first, batch(0, 4));
    assert!(stream.next().await.is_none());
    assert_eq!(
        *raw_srv.requests.lock().expect("lock"),
        vec![Bytes::from(req.encode_to_vec())]
    );

    let status = client
        .receiver(EgressRequest::default())
        .await
        .expect_err("receiver refused");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), "use BatchedReceiver instead");
}

#[tokio::test]
async fn pusher_raw_and_typed_interoperate() {
    let payloads: Vec<EnvelopeData> = (0..3u8)
        .map(|i| EnvelopeData {
            payload: Bytes::from(vec![i; 3]),
        })
        .collect();

    let typed = TypedPusher::default();
    let addr =
        serve(plumbing_v1::doppler_ingestor_server::DopplerIngestorServer::new(typed.clone()))
            .await;
    let mut raw_client =
        raw::doppler_ingestor_client::DopplerIngestorClient::new(channel(addr).await);
    let encoded: Vec<Bytes> = payloads
        .iter()
        .map(|d| Bytes::from(d.encode_to_vec()))
        .collect();
    raw_client
        .pusher(futures::stream::iter(encoded.clone()))
        .await
        .expect("pusher");
    assert_eq!(*typed.received.lock().expect("lock"), payloads);

    let raw_srv = RawPusher::default();
    let addr = serve(raw::doppler_ingestor_server::DopplerIngestorServer::new(
        raw_srv.clone(),
    ))
    .await;
    let mut typed_client =
        plumbing_v1::doppler_ingestor_client::DopplerIngestorClient::new(channel(addr).await);
    typed_client
        .pusher(futures::stream::iter(payloads.clone()))
        .await
        .expect("pusher");
    assert_eq!(*raw_srv.frames.lock().expect("lock"), encoded);
}
