//! `type: elasticsearch` — Elasticsearch or OpenSearch through `_bulk`.
//!
//! Every alert is a `create` with `_id` = its uuid, so a replay after a crash cannot make a
//! second document: the second `create` answers 409, which counts as delivered. Bulk answers are
//! read item by item and only the items that failed for a passing reason are sent again. A 413
//! splits the batch in halves within the same attempt.

mod config;
mod encode;
mod response;
mod template;

pub use config::{ElasticsearchConfig, ElasticsearchSettings, IndexSuffix, Target, DEFAULT_BATCH};
pub use encode::{bulk_body, flat_key, index_name};
pub use template::index_template;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Method;
use tokio::sync::OnceCell;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::http::{self, classify_status, HttpRequest};
use crate::output::{BatchLimits, Output};
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType =
    OutputType::new::<ElasticsearchSettings>("elasticsearch", Audience::Systems);

/// The most of a bulk answer read: with `filter_path`, about 30 bytes an item when all went
/// well, a few hundred when an item failed.
const MAX_BULK_ANSWER: usize = 32 << 20;

pub struct ElasticsearchOutput {
    nodes: Vec<SecretUrl>,
    next_node: AtomicUsize,
    target: Target,
    limits: BatchLimits,
    flatten: bool,
    gzip: bool,
    pipeline: Option<String>,
    auth: Option<HeaderValue>,
    client: http::Client,
    create_template: bool,
    template_installed: OnceCell<()>,
}

impl OutputSettings for ElasticsearchSettings {
    type Keys = ElasticsearchConfig;

    fn check(keys: ElasticsearchConfig) -> Result<Self, SettingsError> {
        ElasticsearchSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        ElasticsearchSettings::describe(self)
    }
}

pub fn build(settings: &ElasticsearchSettings, ctx: BuildContext) -> ElasticsearchOutput {
    ElasticsearchOutput {
        nodes: settings.nodes.clone(),
        next_node: AtomicUsize::new(0),
        target: settings.target.clone(),
        limits: settings.limits,
        flatten: settings.flatten_fields,
        gzip: settings.gzip,
        pipeline: settings.pipeline.clone(),
        auth: settings.auth.clone(),
        client: http::client_with_tls(ctx.max_in_flight, &settings.tls),
        create_template: settings.create_index_template,
        template_installed: OnceCell::new(),
    }
}

impl ElasticsearchOutput {
    /// The node for the next request: nodes take turns, so a dead one costs one failed attempt.
    fn node(&self) -> &SecretUrl {
        let i = self.next_node.fetch_add(1, Ordering::Relaxed);
        &self.nodes[i % self.nodes.len()]
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        headers
    }

    /// Installs the index template once per process, before the first write.
    async fn ensure_template(&self) -> Result<(), Failure> {
        if !self.create_template {
            return Ok(());
        }
        self.template_installed
            .get_or_try_init(|| async {
                let (name, body) = index_template(&self.target);
                let mut headers = self.headers();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let request = HttpRequest {
                    method: Method::PUT,
                    url: self
                        .node()
                        .endpoint(&format!("/_index_template/{name}"), None),
                    headers,
                    body: serde_json::to_vec(&body).expect("JSON").into(),
                };
                let r = http::send(&self.client, request).await?;
                if r.status.is_success() {
                    tracing::info!(template = %name, "index template installed");
                    Ok(())
                } else {
                    Err(Failure::new(
                        Some(r.status.as_u16()),
                        format!(
                            "installing index template {name} failed: {}",
                            crate::card::truncate(&String::from_utf8_lossy(&r.body), 300)
                        ),
                    ))
                }
            })
            .await
            .map(|_| ())
    }

    /// One bulk request for `batch`; on 413, each half on its own.
    fn send_bulk<'a>(
        &'a self,
        batch: &'a [Envelope],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Delivery> + Send + 'a>> {
        Box::pin(async move {
            let body = bulk_body(&self.target, self.flatten, batch);
            // The batch was cut by the size of the stored alerts; the bulk body adds the action
            // lines and @timestamp, so keep `max_bytes` a true limit on the request.
            if body.len() > self.limits.max_bytes && batch.len() > 1 {
                let (left, right) = batch.split_at(batch.len() / 2);
                let (a, b) = tokio::join!(self.send_bulk(left), self.send_bulk(right));
                return merge(a, left.len(), b, right.len());
            }
            let mut headers = self.headers();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            let body = if self.gzip {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                crate::http::gzip(&body)
            } else {
                body
            };
            // Only what is read back: the error flag and each item's status and error.
            let mut query = String::from("filter_path=errors,items.*.status,items.*.error");
            if let Some(p) = &self.pipeline {
                query.push_str("&pipeline=");
                query.push_str(p);
            }
            let request = HttpRequest {
                method: Method::POST,
                url: self.node().endpoint("/_bulk", Some(&query)),
                headers,
                body: body.into(),
            };
            let r = match http::send_capped(&self.client, request, MAX_BULK_ANSWER).await {
                Ok(r) => r,
                Err(f) => return Delivery::Retry(f),
            };
            match r.status.as_u16() {
                200 => response::classify_bulk(&r.body, batch.len()),
                413 if batch.len() > 1 => {
                    let (left, right) = batch.split_at(batch.len() / 2);
                    let (a, b) = tokio::join!(self.send_bulk(left), self.send_bulk(right));
                    merge(a, left.len(), b, right.len())
                }
                413 => Delivery::Permanent(
                    Failure::new(
                        Some(413),
                        "one alert is larger than the cluster takes (http.max_content_length)",
                    )
                    .with_code("too_large"),
                ),
                _ => match classify_status(r.status, &r.headers) {
                    Delivery::Permanent(f) => {
                        let code = match r.status.as_u16() {
                            401 | 403 => "unauthorized",
                            404 => "not_found",
                            _ => "rejected",
                        };
                        Delivery::Permanent(
                            Failure::new(f.status, error_reason(&r.body, &f.reason))
                                .with_code(code),
                        )
                    }
                    other => other,
                },
            }
        })
    }
}

/// Elasticsearch's `error.reason` from an error answer, else `fallback`.
fn error_reason(body: &[u8], fallback: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match (v["error"]["type"].as_str(), v["error"]["reason"].as_str()) {
        (Some(t), Some(r)) => format!("{t}: {}", crate::card::truncate(r, 300)),
        _ => fallback.to_string(),
    }
}

/// The outcomes of two halves as one.
fn merge(a: Delivery, a_len: usize, b: Delivery, b_len: usize) -> Delivery {
    if a == Delivery::Delivered && b == Delivery::Delivered {
        return Delivery::Delivered;
    }
    let mut items = per_item(a, a_len);
    items.extend(per_item(b, b_len));
    Delivery::Partial(items)
}

/// A whole-batch outcome as one result per item.
fn per_item(d: Delivery, n: usize) -> Vec<ItemResult> {
    match d {
        Delivery::Delivered => vec![ItemResult::Delivered; n],
        Delivery::Permanent(f) => vec![ItemResult::Permanent(f); n],
        Delivery::Retry(f) | Delivery::RetryAfter(f, _) => vec![ItemResult::Retry(f); n],
        Delivery::Partial(items) => items,
    }
}

#[async_trait]
impl Output for ElasticsearchOutput {
    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        if let Err(f) = self.ensure_template().await {
            return Delivery::Retry(f);
        }
        self.send_bulk(batch).await
    }
}

#[cfg(test)]
mod tests;
