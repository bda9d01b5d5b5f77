//! Receipts (`/receipts`): search by receipt or job id, node, date range and kind, newest
//! first over indexed queries; aggregates over the filter window; and one receipt
//! (`/receipts/{id}`) with its JSON, copy and download, the signature badge (checked here
//! against the pinned deployment key, optionally again in the browser), and its settlement.

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use bitsage_core::page::PageRequest;
use bitsage_core::receipt::ReceiptFilter;
use bitsage_core::settlement::EpochState;
use bitsage_core::time::TimeWindow;
use bitsage_core::{JobId, NodeId, ReceiptId};
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    ago, api_error_page, given, page, page_number, query_string, short, utc, viewer, Section,
    Viewer,
};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::service;
use crate::AppState;

/// Rows per page.
const PAGE: u32 = 50;

/// The search form's fields (empty fields are "any").
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ReceiptsQuery {
    q: Option<String>,
    node: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
}

fn day(name: &str, v: &Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    given(v)
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| ApiError::invalid(format!("{name} must be a date (YYYY-MM-DD)")))
        })
        .transpose()
}

impl ReceiptsQuery {
    fn filters(&self) -> String {
        query_string(&[
            ("q", &self.q),
            ("node", &self.node),
            ("kind", &self.kind),
            ("from", &self.from),
            ("to", &self.to),
        ])
    }

    /// The store filter and page, or the field that is wrong.
    fn filter(&self) -> Result<(ReceiptFilter, u64), ApiError> {
        let node = given(&self.node).map(service::parse_node_id).transpose()?;
        let kind = given(&self.kind).map(str::to_string);
        if kind.as_ref().is_some_and(|k| k.len() > 64) {
            return Err(ApiError::invalid("kind is at most 64 characters"));
        }
        let from = day("from", &self.from)?;
        let to = day("to", &self.to)?;
        let start = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|t| Utc.from_utc_datetime(&t))
                .ok_or_else(|| ApiError::invalid("the date is out of range"))
        };
        let window = match (from, to) {
            (None, None) => None,
            (f, t) => {
                let from = f
                    .map(start)
                    .transpose()?
                    .unwrap_or_else(bitsage_core::time::earliest);
                let to = match t {
                    Some(t) => start(
                        t.succ_opt()
                            .ok_or_else(|| ApiError::invalid("to is out of range"))?,
                    )?,
                    None => bitsage_core::time::latest(),
                };
                if to <= from {
                    return Err(ApiError::invalid("to must be on or after from"));
                }
                Some(TimeWindow { from, to })
            }
        };
        let job = match given(&self.q) {
            None => None,
            Some(q) => Some(
                JobId::parse(q)
                    .map_err(|_| ApiError::invalid("search: a receipt id or a job id (UUID)"))?,
            ),
        };
        let page = page_number(&self.page)?;
        Ok((
            ReceiptFilter {
                node,
                window,
                kind,
                job,
                newest_first: true,
            },
            page,
        ))
    }
}

/// `GET /receipts`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    q: Result<ApiQuery<ReceiptsQuery>, ApiError>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    // A receipt id goes straight to the receipt (when the viewer may see it).
    if let Some(id) = given(&q.q).and_then(|s| ReceiptId::parse(s).ok()) {
        if auth::ensure_receipt_visible(&state, &caller, &id.to_string())
            .await
            .is_ok()
        {
            return Redirect::to(&format!("/receipts/{id}")).into_response();
        }
    }
    let nodes: Vec<NodeId> = super::picker_nodes(&state, &v)
        .await
        .map(|n| n.into_iter().map(|n| n.id).collect())
        .unwrap_or_default();
    let results = results(&state, &v, &q).await;
    let body = html! {
        h1 { "Receipts" }
        (search_form(&q, &nodes, v.is_admin()))
        (results)
    };
    page(
        &state,
        &v,
        Section::Receipts,
        "Receipts",
        Some("receipts"),
        body,
    )
    .await
}

fn search_form(q: &ReceiptsQuery, nodes: &[NodeId], admin: bool) -> Markup {
    html! {
        form.filters method="get" action="/receipts" aria-label="Search receipts" {
            div.field {
                label for="r-q" { "Receipt or job id" }
                input #r-q name="q" value=[given(&q.q)] size="38" maxlength="64" placeholder="UUID";
            }
            div.field {
                label for="r-node" { "Node" }
                select #r-node name="node" {
                    @if admin { option value="" { "Any" } } @else { option value="" { "Choose a node" } }
                    @for n in nodes {
                        option value=(n.as_str()) selected[given(&q.node) == Some(n.as_str())] { (n.as_str()) }
                    }
                }
            }
            div.field {
                label for="r-kind" { "Kind" }
                input #r-kind name="kind" value=[given(&q.kind)] maxlength="64" placeholder="e.g. poseidon2-chain";
            }
            div.field {
                label for="r-from" { "From (UTC day)" }
                input #r-from name="from" type="date" value=[given(&q.from)];
            }
            div.field {
                label for="r-to" { "To (UTC day)" }
                input #r-to name="to" type="date" value=[given(&q.to)];
            }
            button.btn.primary type="submit" { "Search" }
            a.btn.ghost href="/receipts" { "Reset" }
        }
    }
}

async fn results(state: &AppState, v: &Viewer, q: &ReceiptsQuery) -> Markup {
    let found = async {
        let (filter, page) = q.filter()?;
        let caller = v.caller();
        match &filter.node {
            Some(node) => auth::ensure_node_visible(state, &caller, node).await?,
            None if !v.is_admin() => {
                return Err(ApiError::invalid(
                    "choose one of your nodes: operators search receipts one node at a time",
                ))
            }
            None => {}
        }
        let request = PageRequest {
            limit: PAGE,
            offset: (page - 1) * u64::from(PAGE),
        };
        let list = service::receipts_page(state, &filter, request).await?;
        let totals = match &filter.node {
            Some(node) => Some(state.store.earnings_total(node, filter.window).await?),
            None => None,
        };
        Ok::<_, ApiError>((list, page, totals))
    };
    let filters = q.filters();
    html! {
        div #receipts-results data-live-region {
            @match found.await {
                Err(e) => p.panel role="status" { (e.message) },
                Ok((list, page, totals)) => {
                    section.grid aria-label="Aggregates over the filter" {
                        div.card.kpi { div.label { "Receipts" } div.value #receipt-count { (list.total) } }
                        @if let Some(t) = &totals {
                            div.card.kpi { div.label { "Gross (node, window)" } div.value { (t.gross.format_sage()) } }
                            div.card.kpi { div.label { "Fee" } div.value { (t.fee.format_sage()) } }
                            div.card.kpi { div.label { "Net" } div.value { (t.net.format_sage()) } }
                        }
                    }
                    @if list.items.is_empty() {
                        p.panel { "No receipt matches." }
                    } @else {
                        div.table-wrap {
                            table #receipts-table {
                                caption.sr-only { "Receipts, newest first, page " (page) }
                                thead { tr {
                                    th scope="col" { "Receipt" }
                                    th scope="col" { "Job" }
                                    th scope="col" { "Node" }
                                    th scope="col" { "Kind" }
                                    th.num scope="col" { "Payment" }
                                    th.num scope="col" { "Net" }
                                    th scope="col" { "Completed" }
                                } }
                                tbody {
                                    @for r in &list.items {
                                        @let b = &r.receipt.body;
                                        tr data-receipt-id=(b.id) {
                                            td.mono { a href={ "/receipts/" (b.id) } { (short(&b.id.to_string())) } }
                                            td.mono { (short(&b.job_id.to_string())) }
                                            td { (b.node_id.as_str()) }
                                            td { (b.kind) }
                                            td.num { (r.payment_formatted) }
                                            td.num { (r.net_formatted) }
                                            td { (ago(b.completed_at)) }
                                        }
                                    }
                                }
                            }
                        }
                        nav.pager aria-label="Pages" {
                            @if page > 1 { a.btn href={ "/receipts?" (filters) "&page=" (page - 1) } rel="prev" { "← Newer" } }
                            span.muted { "Page " (page) }
                            @if list.next_offset.is_some() { a.btn href={ "/receipts?" (filters) "&page=" (page + 1) } rel="next" { "Older →" } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /receipts/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    if let Err(e) = auth::ensure_receipt_visible(&state, &caller, &id).await {
        return api_error_page(&v, e);
    }
    let bundle = match service::receipt(&state, &id, false, true).await {
        Ok(b) => b,
        Err(e) => return api_error_page(&v, e),
    };
    let receipt = &bundle.receipt.receipt;
    let b = &receipt.body;
    let pinned = state.public_key();
    let key_id = bitsage_core::deployment::key_id(&pinned);
    let node_key = match state.store.get_node(&b.node_id).await {
        Ok(Some(n)) if n.public_key != b.node_key => {
            Some("the receipt's node key is not the key this node registered with")
        }
        _ => None,
    };
    let check = receipt
        .verify_pinned(&pinned)
        .map_err(|e| e.to_string())
        .and_then(|()| node_key.map_or(Ok(()), |why| Err(why.to_string())));
    let json = serde_json::to_string_pretty(&bundle.receipt).unwrap_or_default();
    let message = hex::encode(b.countersign_bytes(&receipt.node_signature));
    let rid = b.id.to_string();
    let body = html! {
        p { a href="/receipts" { "← Receipts" } }
        h1 { "Receipt " span.mono { (short(&rid)) } }
        p {
            @match &check {
                Ok(()) => span.badge.good #signature-badge data-verified="true" {
                    "✓ Signature verified · deployment key " code { (key_id) }
                },
                Err(why) => span.badge.bad #signature-badge data-verified="false" {
                    "✗ Signature NOT verified: " (why)
                },
            }
        }
        p.small.muted #recheck data-recheck data-message=(message) data-signature=(receipt.coordinator_signature.to_hex()) {
            "Browser re-check: runs where the page is a secure context."
        }
        div.grid-2 {
            section.panel aria-labelledby="r-facts" {
                h2 #r-facts { "What was done" }
                dl.kv {
                    dt { "Receipt" } dd.mono { (rid) }
                    dt { "Job" } dd.mono { (b.job_id) }
                    dt { "Kind" } dd { (b.kind) }
                    dt { "Node" } dd { a href={ "/nodes/" (b.node_id.as_str()) } { (b.node_id.as_str()) } }
                    dt { "Completed" } dd { (utc(b.completed_at)) }
                    dt { "Payment" } dd { (bundle.receipt.payment_formatted) }
                    dt { "Fee" } dd { (bundle.receipt.fee_formatted) }
                    dt { "Net to the node" } dd { (bundle.receipt.net_formatted) }
                    dt { "Proof hash" } dd.mono { (b.proof_hash) }
                }
            }
            section.panel aria-labelledby="r-settle" {
                h2 #r-settle { "Settlement" }
                @match &bundle.inclusion {
                    None => p { span.chip.chip-pending { "pending" } " Waiting for a settlement epoch." },
                    Some(inc) => {
                        dl.kv {
                            dt { "Epoch" } dd { (inc.epoch_id) }
                            dt { "State" } dd {
                                @match &inc.state {
                                    EpochState::Pending => span.chip.chip-pending { "assembled" },
                                    EpochState::Sent { tx_hash } => { span.chip.chip-stale { "sent" } " " code { (tx_hash) } },
                                    EpochState::Accepted { tx_hash, block } => { span.chip.chip-active { "anchored" } " block " (block) " · tx " code { (tx_hash) } },
                                    EpochState::Failed { reason } => { span.chip.chip-offline { "failed" } " " (reason) " (retried)" },
                                }
                            }
                            dt { "Receipts root" } dd.mono { (inc.receipts_root) }
                            dt { "Leaf" } dd { (inc.leaf_index) }
                        }
                    }
                }
                h3 { "Check it yourself" }
                p.small { "Offline, against the key your operator publishes:" }
                // Wider than its panel: focusable, so the keyboard can scroll it.
                pre.small tabindex="0" aria-label="Commands to check this receipt offline" { "curl -s '…/api/receipts/" (rid) "?with_proof=true&with_inclusion=true' > receipt.json\nbitsage-agent verify-receipt receipt.json --coordinator-key " (pinned) }
            }
        }
        section aria-labelledby="r-json" {
            h2 #r-json { "JSON" }
            div.actions {
                button.btn type="button" data-copy="receipt-json" { "Copy" }
                button.btn type="button" data-download="receipt-json" data-name={ "receipt-" (rid) ".json" } data-type="application/json" { "Download" }
                a.btn href={ "/api/receipts/" (rid) "?with_proof=true&with_inclusion=true" } download={ "receipt-" (rid) "-with-proof.json" } { "Download with proof" }
            }
            pre #receipt-json tabindex="0" aria-label="The receipt as JSON" { (json) }
        }
    };
    page(&state, &v, Section::Receipts, "Receipt", None, body).await
}
