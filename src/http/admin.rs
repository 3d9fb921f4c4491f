//! The admin API under `/api/v1` (`docs/http-api.md`): what the command line uses while
//! the daemon holds the store, and what destinations use to report
//! shipments. Every operation is one of `crate::ops`, so the API and the
//! command line with the store open cannot disagree; this module only reads
//! requests, checks the token and turns results into HTTP.
//!
//! - Every route, and every unknown path under `/api/v1`, needs
//!   `Authorization: Bearer <daemon.admin_token>`, compared in constant time.
//!   Missing or wrong: 401 with `WWW-Authenticate: Bearer`.
//! - With no `daemon.admin_token` configured the admin API is off: every
//!   route answers 403 with a message saying to set it. Not 401, because no
//!   credentials could succeed; the daemon warns about it at start.
//! - Errors are `{ "error": "..." }` saying what is wrong: 400 for a bad
//!   request (bad JSON, unknown field or query parameter, invalid values),
//!   404 for an unknown order, outbox item, SKU or route, 409 when the
//!   state does not allow it (releasing an order not on hold, an order that
//!   kept changing), 408 for a body not sent within 30 s, 413 for a body
//!   over 1 MiB, 500/503 when the store fails.
//! - Writes answer only once flushed (acknowledged means durable).
//! - `orders/{id}/raw` answers the order's raw channel payload as stored,
//!   not wrapped in a document: the command line prints it as it comes.
//! - `rules/explain` and `rules/apply` answer the JSON that the command
//!   prints with `--json`; with `detail=true` they answer the data the
//!   command renders from (`{ "order", "evaluation" }`, and
//!   `{ "changes", "rules", "dry_run" }`), so its text output is the same
//!   whether it read the store or asked the daemon.
//!
//! The token is never logged and never part of an answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchyard_contract::{Channel, Order, OrderStatus};

use crate::channels::accounts::Checks;
use crate::channels::poll::Backfill;
use crate::config::Secret;
use crate::effects::Outbound;
use crate::effects::stock::StockUpdate;
use crate::effects::tracking::ShipmentRequest;
use crate::ingest::Ingest;
use crate::ops::{self, OpError};
use crate::rules::{PersonHold, explain_json};
use crate::store::{MAX_PAGE, OrderFilter, StoreError};

/// Where `router` is nested; handlers see paths without it.
pub const PREFIX: &str = "/api/v1";

/// The largest request body the admin API reads. A stock import of ten
/// thousand SKUs is about 400 KB; an order to explain a few tens of KB.
pub const ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// What the admin API needs beyond the rest of the HTTP state: the token and
/// the outbound handle whose wakers reach the daemon's outbox workers.
#[derive(Clone, Default)]
pub struct AdminState {
    pub token: Option<Secret>,
    pub outbound: Outbound,
    /// Runs `switchyard sync` inside the daemon; None: no accounts to sync.
    pub backfill: Option<Arc<dyn Backfill>>,
    /// Runs `switchyard check --online` inside the daemon.
    pub checks: Option<Arc<dyn Checks>>,
    /// The configured destination ids, which the `route` filter must name.
    pub destinations: Option<Vec<String>>,
}

impl AdminState {
    pub fn new(token: Option<Secret>, outbound: Outbound) -> Self {
        AdminState {
            token,
            outbound,
            backfill: None,
            checks: None,
            destinations: None,
        }
    }

    pub fn with_checks(mut self, checks: Arc<dyn Checks>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// The `route` filter is checked against these (without: not checked).
    pub fn with_destinations(mut self, destinations: Vec<String>) -> Self {
        self.destinations = Some(destinations);
        self
    }

    pub fn with_backfill(mut self, backfill: Arc<dyn Backfill>) -> Self {
        self.backfill = Some(backfill);
        self
    }
}

/// How long a client may take to send its body: a connection that trickles
/// bytes must not hold a request open forever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

struct Ctx {
    ingest: Ingest,
    token: Option<Secret>,
    outbound: Outbound,
    backfill: Option<Arc<dyn Backfill>>,
    checks: Option<Arc<dyn Checks>>,
    destinations: Option<Vec<String>>,
}

type Shared = State<Arc<Ctx>>;

/// The admin routes, to be nested under [`PREFIX`].
pub fn router<S: Clone + Send + Sync + 'static>(ingest: Ingest, admin: AdminState) -> Router<S> {
    if admin.token.is_none() {
        tracing::warn!(
            "admin API disabled (every /api/v1 request gets 403): daemon.admin_token is not set; \
             set admin_token_env or admin_token_file in [daemon] to use the CLI while the daemon runs"
        );
    }
    let ctx = Arc::new(Ctx {
        ingest,
        token: admin.token,
        outbound: admin.outbound,
        backfill: admin.backfill,
        checks: admin.checks,
        destinations: admin.destinations,
    });
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(show_order))
        .route("/orders/{id}/raw", get(show_raw))
        .route("/orders/{id}/hold", post(hold))
        .route("/orders/{id}/release", post(release))
        .route("/orders/{id}/tags", post(tags))
        .route("/orders/{id}/redeliver", post(redeliver))
        .route("/shipments", post(ship))
        .route("/stock", put(set_stock))
        .route("/stock/{sku}", get(show_stock))
        .route("/outbox", get(list_outbox))
        .route("/outbox/retry-dead", post(retry_dead))
        .route("/outbox/{id}/retry", post(retry))
        .route("/outbox/{id}", delete(drop_item))
        .route("/rules/explain", post(explain))
        .route("/rules/apply", post(apply))
        .route("/sync/{account}", post(sync))
        .route("/check", post(check))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(ctx.clone(), authorize))
        .with_state(ctx)
}

// --- errors -----------------------------------------------------------------------

/// An answer other than success: `{ "error": message }` with a status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: store failed");
        let status = match e {
            StoreError::Flush { .. } | StoreError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("{e}; nothing was acknowledged, try again"))
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            OpError::Invalid(m) => ApiError::bad(m),
            OpError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            OpError::Store(e) => ApiError::store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::new(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        // axum's own wording opens with a capital and a phrase that hides
        // the parameter; say which part of the request is wrong instead.
        let text = e.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::new(e.status(), format!("query string: {detail}"))
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

fn accepted(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::ACCEPTED, axum::Json(value)).into_response())
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no admin route {} {PREFIX}{}; the routes are listed in docs/http-api.md",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not a method of {PREFIX}{}; the routes are listed in docs/http-api.md",
            req.method(),
            req.uri().path()
        ),
    )
}

// --- authorization ----------------------------------------------------------------------

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

async fn authorize(State(ctx): Shared, req: Request, next: Next) -> Response {
    let Some(token) = &ctx.token else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin API is off: daemon.admin_token is not set; set admin_token_env or \
             admin_token_file in [daemon] and restart the daemon",
        )
        .into_response();
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    if presented.is_some_and(|p| token.matches(p)) {
        return next.run(req).await;
    }
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        given = presented.is_some(),
        "admin API request refused: bearer token missing or wrong"
    );
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong admin token: send Authorization: Bearer <daemon.admin_token>",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"switchyard admin\""),
    );
    response
}

// --- helpers ----------------------------------------------------------------------

/// Runs store work off the async threads (sled calls block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "admin API: request task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed inside the daemon; see its log",
            ))
        }
    }
}

/// Reads a JSON body of at most `ADMIN_BODY_LIMIT` bytes; `what` names it in
/// errors and `example` shows what was expected.
async fn json_body<T: DeserializeOwned>(
    body: Body,
    what: &str,
    example: &str,
) -> Result<T, ApiError> {
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, ADMIN_BODY_LIMIT));
    let bytes = read
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "{what}: the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            while let Some(s) = source {
                if s.to_string().contains("length limit") {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("{what}: body larger than {ADMIN_BODY_LIMIT} bytes"),
                    );
                }
                source = s.source();
            }
            ApiError::bad(format!("{what}: the body could not be read: {e}"))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(format!(
            "{what}: the body is empty; send JSON like {example}"
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("{what}: {e}; expected JSON like {example}")))
}

impl Ctx {
    fn store(&self) -> &crate::store::Store {
        self.ingest.store()
    }

    /// Waits until write `seq` is durable (0: nothing was written, but an
    /// equal write by someone else may still be on its way to disk).
    async fn durable(&self, seq: u64) -> Result<(), ApiError> {
        let result = if seq == 0 {
            self.store().flush().await
        } else {
            self.store().flushed(seq).await
        };
        result.map_err(ApiError::store)
    }
}

// --- orders -----------------------------------------------------------------------

/// The `orders list` filters as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    account: Option<String>,
    tag: Option<String>,
    status: Option<String>,
    /// A destination id, or `none` for unrouted orders.
    route: Option<String>,
    held: Option<bool>,
    /// Orders per page (default 100, at most 1000); read as text so that a
    /// refusal can name what was sent.
    limit: Option<String>,
    /// The cursor of the previous page's `X-Next-After`.
    after: Option<String>,
    /// Oldest first instead of newest first.
    oldest: Option<bool>,
}

/// The header that carries the next page's cursor.
const NEXT_AFTER: &str = "x-next-after";

impl ListQuery {
    fn filter(self, destinations: Option<&[String]>) -> Result<OrderFilter, ApiError> {
        if let (Some(route), Some(known)) = (&self.route, destinations)
            && route != "none"
            && !known.contains(route)
        {
            return Err(ApiError::bad(format!(
                "route: no destination {route:?} in the config; expected one of {}, or none",
                known.join(", ")
            )));
        }
        let limit = page_limit(self.limit, "orders")?;
        let channel = self
            .channel
            .map(|c| c.parse::<Channel>())
            .transpose()
            .map_err(|e| ApiError::bad(format!("channel: {e}")))?;
        let status = self
            .status
            .map(|s| s.parse::<OrderStatus>())
            .transpose()
            .map_err(|e| ApiError::bad(format!("status: {e}")))?;
        Ok(OrderFilter {
            channel,
            account: self.account,
            tag: self.tag,
            status,
            route: self.route.as_deref().map(ops::route_filter),
            held: self.held,
            limit,
            after: self.after,
            oldest: self.oldest.unwrap_or(false),
        })
    }
}

async fn list_orders(
    State(ctx): Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let filter = query?.0.filter(ctx.destinations.as_deref())?;
    let c = ctx.clone();
    let page = blocking(move || Ok(ops::list_orders(c.store(), &filter)?)).await?;
    let orders: Vec<Value> = page.orders.iter().map(ops::ListedOrder::to_json).collect();
    Ok(with_next(axum::Json(orders).into_response(), page.next))
}

/// A listing's `limit` as sent: a number of `what` per page, 1 or more (a
/// page never holds more than [`MAX_PAGE`], whatever is asked).
fn page_limit(limit: Option<String>, what: &str) -> Result<Option<usize>, ApiError> {
    limit
        .map(|l| {
            ops::page_limit(&l).ok_or_else(|| {
                ApiError::bad(format!(
                    "limit: {l:?} is not a number of {what} per page; expected 1 to {MAX_PAGE}"
                ))
            })
        })
        .transpose()
}

/// A page's answer with the next page's cursor, when more may match.
fn with_next(mut response: Response, next: Option<String>) -> Response {
    if let Some(next) = next
        && let Ok(v) = axum::http::HeaderValue::from_str(&next)
    {
        response.headers_mut().insert(NEXT_AFTER, v);
    }
    response
}

async fn show_order(State(ctx): Shared, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id?;
    let c = ctx.clone();
    let detail = blocking(move || Ok(ops::order_detail(c.store(), &id)?)).await?;
    ok(detail.to_json())
}

/// The payload as stored, not wrapped or parsed: a webhook body goes out
/// byte for byte, whatever it holds that a JSON parser would refuse.
async fn show_raw(State(ctx): Shared, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id?;
    let c = ctx.clone();
    let text = blocking(move || Ok(ops::raw_payload(c.store(), &id)?)).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
}

async fn hold(
    State(ctx): Shared,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    let Path(id) = id?;
    let body: HoldBody = json_body(body, "hold", r#"{ "reason": "address check" }"#).await?;
    let c = ctx.clone();
    let written = blocking(move || {
        Ok(ops::hold(
            c.store(),
            &c.outbound,
            &id,
            &body.reason,
            Utc::now(),
        )?)
    })
    .await?;
    ctx.durable(written.seq).await?;
    tracing::info!(order = %written.value.id, "admin API: order held");
    ok(written.value)
}

async fn release(State(ctx): Shared, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id?;
    let c = ctx.clone();
    let written =
        blocking(move || Ok(ops::release(c.store(), &c.outbound, &id, Utc::now())?)).await?;
    ctx.durable(written.seq).await?;
    tracing::info!(order = %written.value.id, "admin API: order released");
    ok(written.value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// `POST /orders/{id}/tags`: hand-set tags added and taken off, the rules
/// run again for the order; answers the order as `GET /orders/{id}` does,
/// with `tagging` saying what changed.
async fn tags(
    State(ctx): Shared,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    let Path(id) = id?;
    let body: TagsBody =
        json_body(body, "tags", r#"{ "add": ["vip"], "remove": ["rush"] }"#).await?;
    let rules = ctx.ingest.rules().current();
    let c = ctx.clone();
    let written = blocking(move || {
        Ok(ops::tag(
            c.store(),
            &c.outbound,
            &rules,
            &id,
            &body.add,
            &body.remove,
            Utc::now(),
        )?)
    })
    .await?;
    if written.seq != 0 {
        ctx.durable(written.seq).await?;
        tracing::info!(order = %written.value.detail.order.id, "admin API: order tagged by hand");
    }
    ok(written.value.to_json())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverQuery {
    dry_run: Option<bool>,
}

/// `POST /orders/{id}/redeliver[?dry_run=true]`: the order delivered again to
/// where its lines go now; 409 with the reason when it is not deliverable.
async fn redeliver(
    State(ctx): Shared,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<RedeliverQuery>, QueryRejection>,
) -> ApiResult {
    let Path(id) = id?;
    let dry_run = query?.0.dry_run.unwrap_or(false);
    let c = ctx.clone();
    let done = blocking(move || {
        Ok(ops::redeliver(
            c.store(),
            &c.outbound,
            &id,
            dry_run,
            Utc::now(),
        )?)
    })
    .await?;
    if done.queued {
        ctx.durable(0).await?;
        tracing::info!(order = %done.order_id, parts = done.parts.len(), "admin API: order delivered again");
    }
    ok(done)
}

// --- shipments and stock ---------------------------------------------------------------

async fn ship(State(ctx): Shared, body: Body) -> ApiResult {
    let req: ShipmentRequest = json_body(
        body,
        "shipment",
        r#"{ "order_id": "shop-us:1001", "carrier": "ups", "tracking_number": "1Z999", "lines": [{ "sku": "MUG-RED", "quantity": 1 }] }"#,
    )
    .await?;
    let c = ctx.clone();
    let written =
        blocking(move || Ok(ops::ship(c.store(), &c.outbound, &req, Utc::now())?)).await?;
    ctx.durable(written.seq).await?;
    if written.value.recorded {
        tracing::info!(order = %written.value.order_id, "admin API: shipment recorded");
    }
    accepted(written.value)
}

async fn set_stock(State(ctx): Shared, body: Body) -> ApiResult {
    let updates: Vec<StockUpdate> = json_body(
        body,
        "stock levels",
        r#"[{ "sku": "MUG-RED", "available": 12 }]"#,
    )
    .await?;
    let c = ctx.clone();
    let written = blocking(move || {
        Ok(ops::set_stock(
            c.store(),
            &c.outbound,
            &updates,
            Utc::now(),
        )?)
    })
    .await?;
    ctx.durable(written.seq).await?;
    tracing::info!(
        skus = written.value.skus,
        queued = written.value.queued,
        "admin API: stock levels set"
    );
    accepted(written.value)
}

async fn show_stock(State(ctx): Shared, sku: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(sku) = sku?;
    let c = ctx.clone();
    ok(blocking(move || Ok(ops::stock_show(c.store(), &sku)?)).await?)
}

// --- outbox -----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    dead: Option<bool>,
    /// Items per page (default 100, at most 1000); read as text so that a
    /// refusal can name what was sent.
    limit: Option<String>,
    /// The cursor of the previous page's `X-Next-After`.
    after: Option<String>,
}

async fn list_outbox(
    State(ctx): Shared,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> ApiResult {
    let q = query?.0;
    let dead = q.dead.unwrap_or(false);
    let limit = page_limit(q.limit, "items")?;
    let c = ctx.clone();
    let page = blocking(move || {
        Ok(ops::outbox_list(
            c.store(),
            dead,
            q.after.as_deref(),
            limit,
        )?)
    })
    .await?;
    Ok(with_next(axum::Json(page.items).into_response(), page.next))
}

async fn retry(State(ctx): Shared, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id?;
    let c = ctx.clone();
    let item = id.clone();
    blocking(move || {
        Ok(ops::outbox_retry(
            c.store(),
            &c.outbound,
            &item,
            Utc::now(),
        )?)
    })
    .await?;
    ctx.durable(0).await?;
    tracing::info!(item = %id, "admin API: outbox item queued again");
    ok(json!({ "id": id, "retried": 1 }))
}

async fn retry_dead(State(ctx): Shared) -> ApiResult {
    let c = ctx.clone();
    let n =
        blocking(move || Ok(ops::outbox_retry_dead(c.store(), &c.outbound, Utc::now())?)).await?;
    ctx.durable(0).await?;
    tracing::info!(retried = n, "admin API: dead letters queued again");
    ok(json!({ "retried": n }))
}

async fn drop_item(State(ctx): Shared, id: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = id?;
    let c = ctx.clone();
    let item = id.clone();
    blocking(move || Ok(ops::outbox_drop(c.store(), &item)?)).await?;
    ctx.durable(0).await?;
    tracing::info!(item = %id, "admin API: outbox item dropped");
    ok(json!({ "id": id, "dropped": true }))
}

// --- rules ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    detail: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    dry_run: Option<bool>,
    detail: Option<bool>,
}

/// Body: `{ "order_id": "..." }` for a stored order, or a whole canonical
/// order (its tags count as the channel's; it need not be stored).
async fn explain(
    State(ctx): Shared,
    query: Result<Query<ExplainQuery>, QueryRejection>,
    body: Body,
) -> ApiResult {
    let detail = query?.0.detail.unwrap_or(false);
    let value: Value = json_body(
        body,
        "rules explain",
        r#"{ "order_id": "shop-us:1001" } or a canonical order"#,
    )
    .await?;
    let rules = ctx.ingest.rules().current();
    let (order, evaluation, person) = match value.as_object().map(|o| (o.len(), o.get("order_id")))
    {
        Some((1, Some(id))) => {
            let Some(id) = id.as_str().map(str::to_owned) else {
                return Err(ApiError::bad("rules explain: order_id must be a string"));
            };
            let c = ctx.clone();
            blocking(move || Ok(ops::explain_stored(c.store(), &rules, &id, Utc::now())?)).await?
        }
        _ => {
            let order: Order = serde_json::from_value(value).map_err(|e| {
                ApiError::bad(format!(
                    "rules explain: the body is neither {{ \"order_id\": \"...\" }} nor a canonical order: {e}"
                ))
            })?;
            let evaluation = ops::explain_given(&rules, &order, Utc::now());
            (order, evaluation, PersonHold::default())
        }
    };
    if detail {
        ok(json!({ "order": order, "evaluation": evaluation, "person": person }))
    } else {
        ok(explain_json(&order, &evaluation, &person))
    }
}

async fn apply(State(ctx): Shared, query: Result<Query<ApplyQuery>, QueryRejection>) -> ApiResult {
    let query = query?.0;
    let dry_run = query.dry_run.unwrap_or(false);
    let rules = ctx.ingest.rules().current();
    let count = rules.len();
    let c = ctx.clone();
    let written = blocking(move || {
        Ok(ops::apply_rules(
            c.store(),
            &c.outbound,
            &rules,
            dry_run,
            Utc::now(),
        )?)
    })
    .await?;
    if written.seq != 0 {
        ctx.durable(written.seq).await?;
        tracing::info!(changed = written.value.len(), "admin API: rules applied");
    }
    if query.detail.unwrap_or(false) {
        ok(json!({ "changes": written.value, "rules": count, "dry_run": dry_run }))
    } else {
        ok(written.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_token_of_the_bearer_scheme_only() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b""), None);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncQuery {
    /// RFC 3339, or a date (midnight UTC).
    since: Option<String>,
}

/// `POST /sync/{account}?since=RFC3339|DATE`: the backfill `switchyard sync` asks
/// for while the daemon runs. The answer streams one JSON line per page with
/// the running totals (`{"progress": {...}}`), then `{"done": {...}}` or
/// `{"error": "..."}`, so the command line shows the same progress either way.
async fn sync(
    State(ctx): Shared,
    Path(account): Path<String>,
    query: Result<Query<SyncQuery>, QueryRejection>,
) -> Response {
    let since = match query.map(|Query(q)| q.since.as_deref().map(ops::parse_since).transpose()) {
        Ok(Ok(since)) => since,
        Ok(Err(e)) => return ApiError::bad(format!("since: {e}")).into_response(),
        Err(e) => return ApiError::bad(e.body_text()).into_response(),
    };
    // Refused before the answer starts, so that it is a 404 like any
    // other unknown id rather than an error line after a 200.
    let known = ctx
        .backfill
        .as_ref()
        .map(|b| b.accounts())
        .unwrap_or_default();
    let Some(backfill) = ctx.backfill.clone().filter(|_| known.contains(&account)) else {
        return ApiError::new(StatusCode::NOT_FOUND, unknown_account(&account, &known))
            .into_response();
    };
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let (lines_tx, lines_rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Vec<u8>, std::convert::Infallible>>();
    tokio::spawn(async move {
        let run = backfill.backfill(&account, since, progress_tx);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                Some(stats) = progress_rx.recv() => {
                    let _ = lines_tx.send(Ok(json_line(&serde_json::json!({ "progress": stats }))));
                }
                outcome = &mut run => break outcome,
            }
        };
        while let Ok(stats) = progress_rx.try_recv() {
            let _ = lines_tx.send(Ok(json_line(&serde_json::json!({ "progress": stats }))));
        }
        let last = match outcome {
            Ok(stats) => serde_json::json!({ "done": stats }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let _ = lines_tx.send(Ok(json_line(&last)));
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(Lines(lines_rx)))
        .unwrap_or_else(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not start the answer",
            )
            .into_response()
        })
}

/// Why `POST /sync/{account}` cannot sync `account`; a CLI whose config
/// has it reaches a daemon started before it was added.
fn unknown_account(account: &str, known: &[String]) -> String {
    format!(
        "no account {account:?} with a connector in this daemon (its accounts: {}); \
         an account added to the config since the daemon started needs a restart \
         (systemctl restart switchyard)",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )
}

/// `POST /check`: every account's connector check, run by the daemon's own
/// connectors (`switchyard check --online` while the daemon runs): the
/// results, one per account with a connector.
async fn check(State(ctx): Shared) -> Response {
    let results = match &ctx.checks {
        Some(checks) => checks.check_all().await,
        None => Vec::new(),
    };
    (StatusCode::OK, axum::Json(results)).into_response()
}

fn json_line(v: &serde_json::Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The streamed answer's lines, as they come.
struct Lines(tokio::sync::mpsc::UnboundedReceiver<Result<Vec<u8>, std::convert::Infallible>>);

impl futures_core::Stream for Lines {
    type Item = Result<Vec<u8>, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
