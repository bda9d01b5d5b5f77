//! Earnings (`/earnings?node=`): the wallet card (address, network, proof status, payout
//! threshold), net earnings per day (chart with its numbers), settled vs pending settlement,
//! the reward estimate (labelled, only while its flag is on), the CSV export and the payout
//! history — from the same functions as `GET /api/earnings/{node}` and `…/payouts`.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use bitsage_core::amount::SAGE_DECIMALS;
use bitsage_core::TokenAmount;
use maud::html;
use serde::Deserialize;

use super::{api_error_page, chip, page, sparkline, unavailable, viewer, Section};
use crate::auth::{self, Caller};
use crate::dashboard::Section as Part;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::operations::PayoutsQuery;
use crate::service;
use crate::AppState;

/// `GET /earnings?node=`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct EarningsPageQuery {
    node: Option<String>,
}

/// An amount as a number of SAGE for a chart's height only (the text shows the exact value).
fn approx(a: &TokenAmount) -> Option<f64> {
    a.format_units(SAGE_DECIMALS).replace(',', "").parse().ok()
}

/// `GET /earnings`.
pub(crate) async fn index(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    q: Result<ApiQuery<EarningsPageQuery>, ApiError>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    let nodes = match super::picker_nodes(&state, &v).await {
        Ok(n) => n,
        Err(e) => return api_error_page(&v, e),
    };
    let chosen = q
        .node
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| nodes.first().map(|n| n.id.as_str().to_string()));
    let picker = html! {
        form.filters method="get" action="/earnings" aria-label="Choose a node" {
            div.field {
                label for="e-node" { "Node" }
                select #e-node name="node" {
                    @for n in &nodes {
                        option value=(n.id.as_str()) selected[chosen.as_deref() == Some(n.id.as_str())] { (n.id.as_str()) }
                    }
                }
            }
            button.btn.primary type="submit" { "Show" }
        }
    };
    let Some(node_id) = chosen else {
        let body = html! {
            h1 { "Earnings" }
            p.panel { "No node yet: earnings appear once a node of your organisation completes work. " a href="/run-node" { "Run a Node" } }
        };
        return page(&state, &v, Section::Earnings, "Earnings", None, body).await;
    };
    let node = match service::parse_node_id(&node_id) {
        Ok(id) => auth::visible_node(&state, &caller, &id).await,
        Err(e) => Err(e),
    };
    let node = match node {
        Ok(n) => n,
        Err(e) => return api_error_page(&v, e),
    };
    let earnings =
        match service::earnings(&state, &node.id, &crate::api::EarningsQuery::default()).await {
            Ok(e) => e,
            Err(e) => return api_error_page(&v, e),
        };
    let payouts = crate::operations::payouts(
        State(state.clone()),
        caller.clone(),
        ApiPath(node.id.as_str().to_string()),
        ApiQuery(PayoutsQuery { months: Some(12) }),
    )
    .await
    .map(|j| j.0);
    let info = service::coordinator_info(&state).await;
    let days: Vec<(String, Option<f64>)> = earnings
        .days
        .iter()
        .map(|d| (d.day.to_string(), approx(&d.total.net)))
        .collect();
    let id = node.id.as_str().to_string();
    let body = html! {
        h1 { "Earnings" }
        (picker)
        div #earnings data-live-region {
            div.grid-2 {
                section.panel aria-labelledby="wallet-card" {
                    h2 #wallet-card { "Wallet" }
                    dl.kv {
                        dt { "Address" } dd.mono { (node.wallet.to_string()) }
                        dt { "Network" } dd { (info.network) @if let Some(c) = &info.payment_chain_id { " · chain " code { (c) } } }
                        dt { "Proof" } dd { (chip(match node.wallet_status().as_str() { "proven" => "active", _ => "pending" })) " " (node.wallet_status().as_str()) }
                        dt { "Payout threshold" } dd { (state.policy().payout_threshold.format_sage()) }
                    }
                }
                section.panel aria-labelledby="split" {
                    h2 #split { "Settled vs pending" }
                    dl.kv {
                        dt { "Net, all time" } dd #net-total { (earnings.total.net_formatted) }
                        dt { "Settled on chain" } dd { (earnings.settlement.settled_net_formatted) }
                        dt { "Pending settlement" } dd { (earnings.settlement.pending_net_formatted) " · " (earnings.settlement.pending_receipts) " receipts" }
                        dt { "Fees" } dd { (earnings.total.fee_formatted) }
                    }
                    h3 { "Reward estimate" }
                    @match &payouts {
                        Err(e) => p.error { (e.message) },
                        Ok(p) => @match &p.reward_estimate {
                            None => p.muted.small { "Not shown on this network (flag show_reward_estimates is off)." },
                            Some(Part::Unavailable { reason }) => (unavailable(reason)),
                            Some(Part::Ok(est)) => p {
                                strong { "Estimate: " } (est.per_30_days_formatted) " per 30 days, " (est.per_year_formatted) " per year"
                                span.muted.small { " — " (est.basis) }
                            },
                        },
                    }
                }
            }
            section.panel aria-labelledby="over-time" {
                h2 #over-time { "Net earnings per day" }
                @if days.is_empty() { p.muted { "Nothing earned yet." } } @else { (sparkline("Net earnings per day", &days, "SAGE")) }
                p { a.btn href={ "/api/earnings/" (id) "?format=csv" } download={ "earnings-" (id) ".csv" } { "Export CSV" } }
            }
            section aria-labelledby="history" {
                h2 #history { "History" }
                @match &payouts {
                    Err(_) => {},
                    Ok(p) => {
                        table {
                            caption { "Payout periods (threshold " (p.threshold_formatted) ")" }
                            thead { tr { th scope="col" { "Month" } th.num scope="col" { "Net" } th scope="col" { "State" } th scope="col" { "Marked" } } }
                            tbody {
                                @for period in &p.periods {
                                    tr {
                                        td { (period.period) }
                                        td.num { (period.net.format_sage()) }
                                        td { (chip(period.state.as_str())) }
                                        td { @if let Some(by) = &period.marked_by { (by) } }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !earnings.days.is_empty() {
                    table {
                        caption { "Per day" }
                        thead { tr { th scope="col" { "Day (UTC)" } th.num scope="col" { "Jobs" } th.num scope="col" { "Gross" } th.num scope="col" { "Fee" } th.num scope="col" { "Net" } } }
                        tbody {
                            @for d in earnings.days.iter().rev() {
                                tr { td { (d.day) } td.num { (d.total.entries) } td.num { (d.total.gross_formatted) } td.num { (d.total.fee_formatted) } td.num { (d.total.net_formatted) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &state,
        &v,
        Section::Earnings,
        "Earnings",
        Some("receipts"),
        body,
    )
    .await
}
