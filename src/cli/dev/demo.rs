//! `dev --demo`: a realistic emitter writing into the agent's v2 gRPC ingress with the
//! generated `client` certificate.
//!
//! Three apps with several instances write OUT and ERR logs (some multi-line stack traces),
//! the router writes access logs (`RTR`), the platform writes a staging/API line now and
//! then, and every instance reports container metrics (a five-metric gauge that converts to a
//! v1 ContainerMetric), a request counter and a latency gauge.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::loggregator_v2::{self as v2, envelope::Message};
use plumbing::shutdown::Shutdown;

/// A demo app.
pub(crate) struct App {
    /// Short name (route host).
    pub(crate) name: &'static str,
    /// App GUID (source id).
    pub(crate) guid: &'static str,
    /// Number of instances.
    pub(crate) instances: u32,
}

/// The demo apps.
pub(crate) const APPS: [App; 3] = [
    App {
        name: "checkout",
        guid: "6f1d2c3b-4a59-4e8f-9d10-2b3c4d5e6f70",
        instances: 2,
    },
    App {
        name: "catalog",
        guid: "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
        instances: 3,
    },
    App {
        name: "worker",
        guid: "c0ffee00-1234-4abc-9def-00112233aabb",
        instances: 1,
    },
];

const PATHS: [&str; 6] = [
    "/",
    "/api/cart",
    "/api/products?page=2",
    "/api/orders/1042",
    "/health",
    "/static/app.js",
];

/// The emitter: owns a gRPC client to the agent.
pub(crate) struct Emitter {
    client: v2::ingress_client::IngressClient<tonic::transport::Channel>,
    rate: u32,
    shutdown: Shutdown,
    rng: u64,
    tick: u64,
    requests: BTreeMap<(usize, u32), u64>,
}

impl Emitter {
    /// An emitter writing about `rate` envelopes per second into the agent behind `channel`.
    pub(crate) fn new(
        channel: tonic::transport::Channel,
        rate: u32,
        shutdown: Shutdown,
    ) -> Emitter {
        let seed = envelope_proto::timestamp::now().unsigned_abs() | 1;
        Emitter {
            client: v2::ingress_client::IngressClient::new(channel),
            rate: rate.max(1),
            shutdown,
            rng: seed,
            tick: 0,
            requests: BTreeMap::new(),
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or_default()
    }

    /// Emits until shutdown: ten batches per second.
    pub(crate) async fn run(mut self) {
        let per_tick = self.rate.div_ceil(10).max(1);
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.tick += 1;
            let mut batch = Vec::with_capacity(per_tick as usize + 8);
            for _ in 0..per_tick {
                self.one(&mut batch);
            }
            // Every 5 s: container metrics and latency gauges for every instance.
            if self.tick % 50 == 1 {
                self.metrics(&mut batch);
            }
            match self.client.send(v2::EnvelopeBatch { batch }).await {
                Ok(_) => warned = false,
                Err(status) if !warned => {
                    tracing::warn!(%status, "demo emitter: the agent refused a batch");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    }

    fn one(&mut self, batch: &mut Vec<v2::Envelope>) {
        let app_index = self.pick(APPS.len());
        let app = &APPS[app_index];
        let instance = u32::try_from(self.pick(app.instances as usize)).unwrap_or_default();
        let roll = self.pick(100);
        match roll {
            0..=34 => {
                let path = PATHS[self.pick(PATHS.len())];
                let ms = 2 + self.pick(120);
                let text = format!("GET {path} completed with 200 in {ms}ms");
                batch.push(log(app.guid, instance, "APP/PROC/WEB", false, text));
            }
            35..=54 => {
                let status = [200, 200, 200, 201, 304, 404, 500][self.pick(7)];
                let path = PATHS[self.pick(PATHS.len())];
                let text = access_log(app, instance, path, status, self.next());
                batch.push(log(app.guid, instance, "RTR", false, text));
                *self.requests.entry((app_index, instance)).or_default() += 1;
                batch.push(envelope(
                    app.guid,
                    instance,
                    Message::Counter(v2::Counter {
                        name: "requests".to_owned(),
                        delta: 1,
                        total: 0,
                    }),
                ));
            }
            55..=69 => {
                let user = 1000 + self.pick(9000);
                let text = format!(
                    "user {user} {}",
                    [
                        "added sku-991 to the cart",
                        "logged in",
                        "paid order 1042",
                        "viewed /products"
                    ][self.pick(4)]
                );
                batch.push(log(app.guid, instance, "APP/PROC/WEB", false, text));
            }
            70..=84 => {
                let ms = 1000 + self.pick(4000);
                let text = format!("WARN upstream payment-gateway slow: {ms}ms");
                batch.push(log(app.guid, instance, "APP/PROC/WEB", true, text));
            }
            85..=91 => {
                let text = "Exception in thread \"http-nio-8080-exec-3\" java.lang.IllegalStateException: cart is empty\n\
                            \tat com.example.shop.Cart.checkout(Cart.java:42)\n\
                            \tat com.example.shop.Api.handle(Api.java:117)\n\
                            \tat java.base/java.lang.Thread.run(Thread.java:1583)"
                    .to_owned();
                batch.push(log(app.guid, instance, "APP/PROC/WEB", true, text));
            }
            92..=95 => {
                let text = "Traceback (most recent call last):\n  File \"worker.py\", line 12, in <module>\n    run()\nKeyError: 'order_id'".to_owned();
                batch.push(log(app.guid, instance, "APP/PROC/WEB", true, text));
            }
            96..=97 => {
                let text = format!(
                    "Updated app with guid {} ({{\"state\"=>\"STARTED\"}})",
                    app.guid
                );
                batch.push(log(app.guid, 0, "API", false, text));
            }
            _ => {
                let text = format!(
                    "Cell 7c1d0b0e-0f6a-4f02-9b1f-5bbf4a2b9e10 successfully created container for instance {}",
                    instance_uuid(app_index, instance)
                );
                batch.push(log(app.guid, instance, "CELL", false, text));
            }
        }
    }

    fn metrics(&mut self, batch: &mut Vec<v2::Envelope>) {
        for app in &APPS {
            for instance in 0..app.instances {
                let cpu = (self.pick(4000) as f64) / 100.0;
                let memory = 120_000_000 + self.pick(80_000_000) as u64;
                let disk = 200_000_000 + self.pick(5_000_000) as u64;
                let mut metrics = BTreeMap::new();
                let mut put = |name: &str, unit: &str, value: f64| {
                    metrics.insert(
                        name.to_owned(),
                        v2::GaugeValue {
                            unit: unit.to_owned(),
                            value,
                        },
                    );
                };
                put("cpu", "percentage", cpu);
                put("memory", "bytes", memory as f64);
                put("disk", "bytes", disk as f64);
                put("memory_quota", "bytes", 536_870_912.0);
                put("disk_quota", "bytes", 1_073_741_824.0);
                batch.push(envelope(
                    app.guid,
                    instance,
                    Message::Gauge(v2::Gauge { metrics }),
                ));
                let latency = 5.0 + (self.pick(2000) as f64) / 10.0;
                let mut metrics = BTreeMap::new();
                metrics.insert(
                    "http.latency".to_owned(),
                    v2::GaugeValue {
                        unit: "ms".to_owned(),
                        value: latency,
                    },
                );
                batch.push(envelope(
                    app.guid,
                    instance,
                    Message::Gauge(v2::Gauge { metrics }),
                ));
            }
        }
    }
}

fn envelope(guid: &str, instance: u32, message: Message) -> v2::Envelope {
    v2::Envelope {
        timestamp: envelope_proto::timestamp::now(),
        source_id: guid.to_owned(),
        instance_id: instance.to_string(),
        message: Some(message),
        ..v2::Envelope::default()
    }
}

fn log(guid: &str, instance: u32, source_type: &str, err: bool, text: String) -> v2::Envelope {
    let mut e = envelope(
        guid,
        instance,
        Message::Log(v2::Log {
            payload: Bytes::from(text),
            r#type: if err {
                v2::log::Type::Err as i32
            } else {
                v2::log::Type::Out as i32
            },
        }),
    );
    e.tags
        .insert("source_type".to_owned(), source_type.to_owned());
    e
}

fn instance_uuid(app: usize, instance: u32) -> String {
    format!("5d2c1b0a-{app:04x}-4000-8000-{instance:012x}")
}

/// A gorouter-style access log line.
fn access_log(app: &App, instance: u32, path: &str, status: u16, rnd: u64) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000");
    let ms = 1 + rnd % 250;
    let port = 40_000 + rnd % 20_000;
    format!(
        "{name}.apps.dev.local - [{now}] \"GET {path} HTTP/1.1\" {status} 0 {bytes} \"-\" \"Mozilla/5.0\" \"127.0.0.1:{port}\" \"10.0.1.{ip}:61012\" x_forwarded_for:\"127.0.0.1\" x_forwarded_proto:\"https\" vcap_request_id:\"{req:08x}-0000-4000-8000-{req:012x}\" response_time:0.{ms:03} gorouter_time:0.000 app_id:\"{guid}\" app_index:\"{instance}\" instance_id:\"{iid}\" x_cf_routererror:\"-\"",
        name = app.name,
        bytes = 128 + rnd % 4096,
        ip = 10 + instance,
        req = rnd & 0xffff_ffff,
        guid = app.guid,
        iid = instance_uuid(0, instance),
    )
}
