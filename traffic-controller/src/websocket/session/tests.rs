use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::channel::mpsc;

use super::*;
use crate::websocket::warning::Admits;

/// A WebSocket stand-in: frames written go to `out`, frames read come from `inp`.
struct ChannelWs {
    out: mpsc::Sender<Message>,
    inp: mpsc::UnboundedReceiver<Result<Message, WsError>>,
}

impl Sink<Message> for ChannelWs {
    type Error = WsError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.out)
            .poll_ready(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.out)
            .start_send(item)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.out)
            .poll_flush(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.out)
            .poll_close(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
}

impl Stream for ChannelWs {
    type Item = Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inp).poll_next(cx)
    }
}

#[derive(Default)]
struct Stats {
    egress: AtomicU64,
    dropped: AtomicU64,
    warned: AtomicU64,
    abandoned: AtomicU64,
}

impl SessionStats for Stats {
    fn egress(&self, n: u64) {
        self.egress.fetch_add(n, Ordering::Relaxed);
    }
    fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    fn warned(&self) {
        self.warned.fetch_add(1, Ordering::Relaxed);
    }
    fn abandoned(&self, n: u64) {
        self.abandoned.fetch_add(n, Ordering::Relaxed);
    }
}

struct Harness {
    from_server: mpsc::Receiver<Message>,
    to_server: mpsc::UnboundedSender<Result<Message, WsError>>,
    ring: std::sync::Arc<Ring<Bytes>>,
    cancel: CancellationToken,
    stats: std::sync::Arc<Stats>,
    task: tokio::task::JoinHandle<(End, u64)>,
}

fn config() -> SessionConfig {
    SessionConfig {
        keepalive: Duration::from_secs(30),
        slow_consumer_timeout: Duration::from_secs(5),
        max_batch: 64,
    }
}

fn start(out_capacity: usize, ring_capacity: usize, admits: Admits) -> Harness {
    let (out_tx, from_server) = mpsc::channel(out_capacity);
    let (to_server, inp) = mpsc::unbounded();
    let ring = std::sync::Arc::new(Ring::new(ring_capacity));
    let cancel = CancellationToken::new();
    let stats = std::sync::Arc::new(Stats::default());
    let task = {
        let (ring, cancel, stats) = (ring.clone(), cancel.clone(), stats.clone());
        tokio::spawn(async move {
            let ws = ChannelWs { out: out_tx, inp };
            let mut warning = Warning::new(admits, "1.2.3.4:5".into());
            let end = run(ws, &ring, &mut warning, config(), &cancel, &*stats, &()).await;
            (end, warning.total())
        })
    };
    Harness {
        from_server,
        to_server,
        ring,
        cancel,
        stats,
        task,
    }
}

async fn next(h: &mut Harness) -> Message {
    h.from_server.next().await.expect("server frame")
}

fn close_code(m: &Message) -> Option<(u16, String)> {
    match m {
        Message::Close(Some(f)) => Some((u16::from(f.code), f.reason.to_string())),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn pings_at_once_and_envelopes_are_binary_frames_in_order() {
    let mut h = start(1024, 100, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    for i in 0..5u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    for i in 0..5u8 {
        assert_eq!(next(&mut h).await, Message::Binary(Bytes::from(vec![i])));
    }
    h.to_server
        .unbounded_send(Ok(Message::text("ignored")))
        .expect("send");
    h.ring.push(Bytes::from_static(b"x"));
    assert_eq!(
        next(&mut h).await,
        Message::Binary(Bytes::from_static(b"x"))
    );
    h.cancel.cancel();
    assert_eq!(close_code(&next(&mut h).await), Some((1000, String::new())));
    assert_eq!(h.task.await.expect("join").0, End::Finished);
    assert_eq!(h.stats.egress.load(Ordering::Relaxed), 6);
}

#[tokio::test(start_paused = true)]
async fn missing_pong_closes_with_1008_after_30s() {
    let mut h = start(16, 10, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    let t0 = Instant::now();
    let m = next(&mut h).await;
    assert_eq!(close_code(&m), Some((1008, KEEPALIVE_REASON.to_owned())));
    assert_eq!(Instant::now() - t0, Duration::from_secs(30));
    assert_eq!(h.task.await.expect("join").0, End::KeepaliveExpired);
}

#[tokio::test(start_paused = true)]
async fn pong_schedules_next_ping_15s_later() {
    let mut h = start(16, 10, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    tokio::time::sleep(Duration::from_secs(20)).await;
    h.to_server
        .unbounded_send(Ok(Message::Pong(Bytes::new())))
        .expect("send");
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    let waited = Instant::now() - t0;
    assert!(
        waited >= Duration::from_secs(14) && waited <= Duration::from_secs(15),
        "{waited:?}"
    );
    // Answer again: no 1008 even after 60 s in total.
    h.to_server
        .unbounded_send(Ok(Message::Pong(Bytes::new())))
        .expect("send");
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.ring.push(Bytes::from_static(b"still here"));
    assert_eq!(
        next(&mut h).await,
        Message::Binary(Bytes::from_static(b"still here"))
    );
    h.to_server
        .unbounded_send(Ok(Message::Close(None)))
        .expect("send");
    assert_eq!(close_code(&next(&mut h).await), Some((1000, String::new())));
    assert_eq!(h.task.await.expect("join").0, End::ClientLeft);
}

#[tokio::test(start_paused = true)]
async fn overflow_injects_warning_ahead_of_next_envelopes() {
    let mut h = start(1024, 4, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    // Fill the ring past capacity before the writer runs: 10 into 4 slots.
    for i in 0..10u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    let mut frames = Vec::new();
    while frames.len() < 6 {
        match next(&mut h).await {
            Message::Binary(b) => frames.push(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    use envelope_proto::events::Envelope;
    use prost::Message as _;
    let log = Envelope::decode(frames[0].as_ref()).expect("warning log");
    let text = log.log_message.and_then(|l| l.message).expect("text");
    assert_eq!(
        &text[..],
        b"Log message output is too high. 6 messages dropped (Total 6 messages dropped) from loggregator.trafficcontroller to 1.2.3.4:5."
    );
    let counter = Envelope::decode(frames[1].as_ref()).expect("warning counter");
    assert_eq!(counter.counter_event.and_then(|c| c.delta), Some(6));
    let rest: Vec<u8> = frames[2..].iter().map(|b| b[0]).collect();
    assert_eq!(rest, vec![6, 7, 8, 9]);
    assert_eq!(h.stats.dropped.load(Ordering::Relaxed), 6);
    h.cancel.cancel();
    let _ = next(&mut h).await;
    assert_eq!(h.task.await.expect("join"), (End::Finished, 6));
}

#[tokio::test(start_paused = true)]
async fn stalled_client_is_a_slow_consumer_after_timeout() {
    // Output channel that nobody drains after the ping: the writer blocks.
    let mut h = start(1, 100, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    let t0 = Instant::now();
    for i in 0..20u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    let (end, _) = h.task.await.expect("join");
    assert_eq!(end, End::SlowConsumer);
    // 5 s without progress, then (no room can be made here) the farewell's
    // own deadline.
    let waited = Instant::now() - t0;
    assert!(
        waited >= Duration::from_secs(5)
            && waited < Duration::from_secs(6) + super::FAREWELL_TIMEOUT,
        "{waited:?}"
    );
    // Everything that was queued for it and not sent is counted as lost.
    assert_eq!(
        h.stats.abandoned.load(Ordering::Relaxed) + h.stats.egress.load(Ordering::Relaxed),
        20
    );
    drop(h.from_server);
}

#[tokio::test(start_paused = true)]
async fn client_disconnect_ends_session() {
    let mut h = start(16, 10, Admits::Everything);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    drop(h.to_server);
    assert_eq!(h.task.await.expect("join").0, End::ClientLeft);
}

#[tokio::test(start_paused = true)]
async fn warnings_are_rate_limited_and_losses_accumulate() {
    use envelope_proto::events::Envelope;
    use prost::Message as _;
    let mut h = start(1024, 2, Admits::Metrics);
    assert!(matches!(next(&mut h).await, Message::Ping(_)));
    let counter_of = |m: Message| match m {
        Message::Binary(b) => Envelope::decode(b.as_ref())
            .ok()
            .and_then(|e| e.counter_event),
        _ => None,
    };
    // First overflow: warning at once.
    for i in 0..5u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    let c = counter_of(next(&mut h).await).expect("warning counter");
    assert_eq!((c.delta, c.total), (Some(3), Some(3)));
    for _ in 0..2 {
        let _ = next(&mut h).await;
    }
    // Second overflow 100 ms later: no warning yet, only the envelopes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..4u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    assert_eq!(next(&mut h).await, Message::Binary(Bytes::from(vec![2])));
    assert_eq!(next(&mut h).await, Message::Binary(Bytes::from(vec![3])));
    // Third overflow after the interval: one warning carrying both losses.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..3u8 {
        h.ring.push(Bytes::from(vec![i]));
    }
    let c = counter_of(next(&mut h).await).expect("warning counter");
    assert_eq!((c.delta, c.total), (Some(3), Some(6)));
    assert_eq!(h.stats.warned.load(Ordering::Relaxed), 2);
    assert_eq!(h.stats.dropped.load(Ordering::Relaxed), 6);
    h.cancel.cancel();
}

/// A socket stand-in with room for `room` frames until `make_room` is called
/// (then for everything): what a consumer that stopped reading looks like
/// when the kernel keeps space back.
#[derive(Default)]
struct Gate {
    frames: std::sync::Mutex<Vec<Message>>,
    room: std::sync::atomic::AtomicUsize,
    unlimited: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Socket for std::sync::Arc<Gate> {
    fn make_room(&self) {
        self.unlimited.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().expect("lock").take() {
            w.wake();
        }
    }
}

struct GatedWs {
    gate: std::sync::Arc<Gate>,
    inp: mpsc::UnboundedReceiver<Result<Message, WsError>>,
}

impl Sink<Message> for GatedWs {
    type Error = WsError;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let g = &self.gate;
        let full = g.frames.lock().expect("lock").len() >= g.room.load(Ordering::SeqCst);
        if full && !g.unlimited.load(Ordering::SeqCst) {
            *g.waker.lock().expect("lock") = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.gate.frames.lock().expect("lock").push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.poll_ready(cx)
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for GatedWs {
    type Item = Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inp).poll_next(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn slow_consumer_finds_envelopes_then_warning_then_close_with_reason() {
    use envelope_proto::events::Envelope;
    use prost::Message as _;
    let gate = std::sync::Arc::new(Gate::default());
    // Room for the ping and three envelopes.
    gate.room.store(4, Ordering::SeqCst);
    let (_to_server, inp) = mpsc::unbounded();
    let ring = std::sync::Arc::new(Ring::new(5));
    let stats = std::sync::Arc::new(Stats::default());
    let cancel = CancellationToken::new();
    let task = {
        let (gate, ring, stats, cancel) =
            (gate.clone(), ring.clone(), stats.clone(), cancel.clone());
        tokio::spawn(async move {
            let ws = GatedWs {
                gate: gate.clone(),
                inp,
            };
            let mut warning = Warning::new(Admits::Everything, "1.2.3.4:5".into());
            let end = run(ws, &ring, &mut warning, config(), &cancel, &*stats, &gate).await;
            (end, warning.total())
        })
    };
    tokio::task::yield_now().await;
    for i in 0..5u8 {
        ring.push(Bytes::from(vec![i]));
    }
    // The socket takes 0..2, the split sink's one-frame slot holds 3, the
    // writer blocks on 4; then ten more arrive into a ring of five: five
    // overwritten, five queued.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 10..20u8 {
        ring.push(Bytes::from(vec![i]));
    }
    let (end, total) = task.await.expect("join");
    assert_eq!(end, End::SlowConsumer);
    // Lost: 4 (taken, never sent), 15..19 (queued), 10..14 (overwritten).
    assert_eq!(total, 11);
    assert_eq!(stats.egress.load(Ordering::Relaxed), 4);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 5);
    assert_eq!(stats.abandoned.load(Ordering::Relaxed), 6);
    assert_eq!(stats.warned.load(Ordering::Relaxed), 1);

    let frames = gate.frames.lock().expect("lock").clone();
    assert_eq!(frames.len(), 8, "{frames:?}");
    assert!(matches!(frames[0], Message::Ping(_)));
    for (i, f) in frames[1..5].iter().enumerate() {
        assert_eq!(*f, Message::Binary(Bytes::from(vec![i as u8])));
    }
    let Message::Binary(log) = &frames[5] else {
        panic!("warning log expected, got {:?}", frames[5])
    };
    let text = Envelope::decode(log.as_ref())
        .expect("log")
        .log_message
        .and_then(|l| l.message)
        .expect("text");
    assert_eq!(
        &text[..],
        b"Log message output is too high. 11 messages dropped (Total 11 messages dropped) from loggregator.trafficcontroller to 1.2.3.4:5."
    );
    let Message::Binary(counter) = &frames[6] else {
        panic!("warning counter expected, got {:?}", frames[6])
    };
    let c = Envelope::decode(counter.as_ref())
        .expect("counter")
        .counter_event
        .expect("counter event");
    assert_eq!((c.delta, c.total), (Some(11), Some(11)));
    assert_eq!(
        close_code(&frames[7]),
        Some((
            1000,
            "slow consumer: no progress for 5s; 11 messages dropped".to_owned()
        ))
    );
}
