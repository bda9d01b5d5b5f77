//! Run a Node (`/run-node`): pick a platform, get a personal `agent.yaml` (this coordinator's
//! URL, the wallet, region, runtime and an enrolment token) and the service unit, follow the
//! step cards, and watch the live checklist (registered → first heartbeat → probe passed →
//! active) update by itself through the event stream.

use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use bitsage_core::{JobStoreExt as _, NodeStatus};
use bitsage_core::{Timestamp, WalletAddress};
use maud::{html, Markup};
use serde::Deserialize;

use super::{ago, encode, given, page, viewer, Section, Viewer};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::onboarding::{AgentYaml, ServiceSpec};
use crate::AppState;

/// The platforms the page knows.
const PLATFORMS: [(&str, &str); 3] = [
    ("linux-nvidia", "Linux + NVIDIA GPU"),
    ("linux-cpu", "Linux, CPU only"),
    ("macos", "macOS"),
];

/// The page's form.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RunNodeQuery {
    platform: Option<String>,
    wallet: Option<String>,
    region: Option<String>,
    runtime: Option<String>,
    since: Option<String>,
}

/// This coordinator's URL as the browser reached it (a host with odd characters is not
/// echoed into a config file).
fn coordinator_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("COORDINATOR-HOST:8080");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// `GET /run-node`.
pub(crate) async fn index(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    q: Result<ApiQuery<RunNodeQuery>, ApiError>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    // The checklist follows nodes registered after the page was first opened.
    let since = match given(&q.since).map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t.with_timezone(&chrono::Utc),
        _ => {
            let now = bitsage_core::time::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let sep = if uri.query().is_some() { "&" } else { "?" };
            return Redirect::to(&format!("{}{sep}since={}", v.here, encode(&now))).into_response();
        }
    };
    let platform = given(&q.platform)
        .filter(|p| PLATFORMS.iter().any(|(k, _)| k == p))
        .unwrap_or("linux-nvidia");
    let own = match &v.principal {
        Some(p) => state.accounts.own_wallets(p).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let wallet_error = given(&q.wallet).and_then(|w| WalletAddress::parse(w).err());
    let wallet = given(&q.wallet)
        .and_then(|w| WalletAddress::parse(w).ok())
        .or_else(|| own.first().copied());
    let region_error = given(&q.region).and_then(|r| bitsage_core::node::check_region(r).err());
    let runtime = given(&q.runtime)
        .and_then(|r| bitsage_core::node::Runtime::parse(r).ok())
        .unwrap_or_default();
    let mac = platform == "macos";
    let (binary, config, data_dir) = if mac {
        (
            "/usr/local/bin/bitsage-agent",
            "/usr/local/etc/bitsage/agent.yaml",
            "/usr/local/var/bitsage",
        )
    } else {
        (
            "/usr/local/bin/bitsage-agent",
            "/etc/bitsage/agent.yaml",
            "/var/lib/bitsage-agent",
        )
    };
    let yaml = |token: Option<&str>| {
        AgentYaml {
            coordinators: vec![coordinator_url(&headers)],
            wallet: wallet.map_or_else(|| "0xYOUR_WALLET".to_string(), |w| w.to_string()),
            region: given(&q.region)
                .filter(|_| region_error.is_none())
                .map(str::to_string),
            runtime: Some(runtime.as_str().to_string()),
            enrolment_token: token.map(str::to_string),
            data_dir: Some(data_dir.to_string()),
            ..Default::default()
        }
        .to_yaml()
    };
    let spec = ServiceSpec {
        binary: binary.into(),
        config: config.into(),
        data_dir: data_dir.into(),
        user: (!mac).then(|| "bitsage".to_string()),
        shutdown_grace_secs: 30,
    };
    // The paths above are constant and valid; an error would still show, not panic.
    let unit = if mac {
        spec.launchd_plist()
    } else {
        spec.systemd_unit()
    }
    .unwrap_or_else(|e| format!("# {e}\n"));
    let checklist = checklist(&state, &v, wallet, since).await;
    let keep = format!(
        "&wallet={}&region={}&runtime={}&since={}",
        wallet.map(|w| encode(&w.to_string())).unwrap_or_default(),
        given(&q.region).map(encode).unwrap_or_default(),
        runtime.as_str(),
        encode(&since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    let body = html! {
        h1 { "Run a Node" }
        p.muted { "Three steps: install the agent, give it its configuration, start it as a service. The checklist below follows your new node live." }
        nav aria-label="Platform" {
            p.platforms {
                @for (key, label) in PLATFORMS {
                    a.btn href={ "/run-node?platform=" (key) (keep) } aria-current=[(key == platform).then_some("true")] { (label) }
                }
            }
        }
        form.filters method="get" action="/run-node" aria-label="Your node's settings" {
            input type="hidden" name="platform" value=(platform);
            input type="hidden" name="since" value=(since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            div.field {
                label for="o-wallet" { "Wallet it earns for" }
                @if own.is_empty() || v.is_admin() {
                    input #o-wallet name="wallet" value=[wallet.map(|w| w.to_string())] size="46" maxlength="66" placeholder="0x…" aria-describedby="o-wallet-help";
                } @else {
                    select #o-wallet name="wallet" aria-describedby="o-wallet-help" {
                        @for w in &own { option value=(w.to_string()) selected[Some(*w) == wallet] { (w.to_string()) } }
                    }
                }
                span.small.muted #o-wallet-help { "Your organisation's wallets." }
                @if let Some(e) = &wallet_error { span.error.small role="alert" { "wallet: " (e) } }
            }
            div.field {
                label for="o-region" { "Region" }
                input #o-region name="region" value=[given(&q.region)] maxlength="64" placeholder="e.g. eu-west";
                @if let Some(e) = &region_error { span.error.small role="alert" { "region: " (e) } }
            }
            div.field {
                label for="o-runtime" { "Runtime" }
                select #o-runtime name="runtime" {
                    @for r in bitsage_core::node::Runtime::ALL.map(|r| r.as_str()) {
                        option value=(r) selected[runtime.as_str() == r] { (r) }
                    }
                }
            }
            button.btn.primary type="submit" { "Update the files" }
        }
        div.steps {
            section.card.step aria-labelledby="s1" {
                h2 #s1 { "1 · Install the agent" }
                @match platform {
                    "linux-nvidia" => p { "Needs the NVIDIA driver (check with " code { "nvidia-smi" } "). Build or download " code { "bitsage-agent" } " and put it in " code { (binary) } ". Check the GPUs it sees:" },
                    "linux-cpu" => p { "No GPU needed: the agent proves on the CPU and reports the host. Put " code { "bitsage-agent" } " in " code { (binary) } ". Check what it sees:" },
                    _ => p { "The agent proves on the CPU on macOS. Put " code { "bitsage-agent" } " in " code { (binary) } ". Check what it sees:" },
                }
                pre { (binary) " gpu" }
            }
            section.card.step aria-labelledby="s2" #agent-config {
                h2 #s2 { "2 · Save agent.yaml as " code { (config) } }
                div.actions {
                    @if let Some(w) = wallet {
                        form data-api="POST /api/enrolments" data-fields="wallet" data-into="enrolment" data-done="Enrolment token created: it is in the file below." {
                            input type="hidden" name="wallet" value=(w.to_string());
                            button.btn.primary type="submit" { "Create an enrolment token" }
                        }
                    }
                    button.btn type="button" data-copy="agent-yaml" { "Copy" }
                    button.btn type="button" data-download="agent-yaml" data-name="agent.yaml" data-type="application/yaml" { "Download agent.yaml" }
                }
                p #enrolment hidden { "Token " code data-from="enrolment.id" {} " for this wallet, single use, valid until " span data-from="enrolment.expires_at" {} ". The secret is in the file below and is not shown again." }
                pre #agent-yaml tabindex="0" aria-label="agent.yaml" data-template=(yaml(Some("{{token}}"))) { (yaml(None)) }
                p.small.muted { "Or write it on the machine: " code { "bitsage-agent init --out " (config) " --coordinator … --wallet …" } }
            }
            section.card.step aria-labelledby="s3" {
                h2 #s3 { "3 · Start it as a service" }
                @if mac {
                    p { "Save as " code { "/Library/LaunchDaemons/network.bitsage.agent.plist" } ", then " code { "sudo launchctl load -w /Library/LaunchDaemons/network.bitsage.agent.plist" } "." }
                } @else {
                    p { "Save as " code { "/etc/systemd/system/bitsage-agent.service" } " (or " code { "bitsage-agent service --systemd --config " (config) } "), create the user and data directory, then start it:" }
                    pre { "sudo useradd --system --home " (data_dir) " bitsage\nsudo install -d -o bitsage " (data_dir) "\nsudo systemctl daemon-reload && sudo systemctl enable --now bitsage-agent" }
                }
                div.actions {
                    button.btn type="button" data-copy="service-unit" { "Copy" }
                    button.btn type="button" data-download="service-unit" data-name=(if mac { "network.bitsage.agent.plist" } else { "bitsage-agent.service" }) { "Download the unit" }
                }
                pre #service-unit tabindex="0" aria-label="Service unit" { (unit) }
            }
        }
        (checklist)
    };
    page(
        &state,
        &v,
        Section::RunNode,
        "Run a Node",
        Some("workers"),
        body,
    )
    .await
}

/// The live checklist of the newest node of `wallet` registered since `since`.
async fn checklist(
    state: &AppState,
    v: &Viewer,
    wallet: Option<WalletAddress>,
    since: Timestamp,
) -> Markup {
    let found = async {
        let Some(wallet) = wallet else {
            return Ok(None);
        };
        let caller = v.caller();
        let allowed = crate::auth::ensure_wallet_visible(state, &caller, &wallet, "wallet").await;
        if allowed.is_err() {
            return Ok(None);
        }
        let filter = bitsage_core::node::NodeFilter {
            wallet: Some(wallet),
            ..Default::default()
        };
        let nodes = state.store.all_nodes(&filter).await?;
        let Some(node) = nodes
            .into_iter()
            .filter(|n| n.registered_at >= since - chrono::Duration::minutes(5))
            .max_by_key(|n| n.registered_at)
        else {
            return Ok(None);
        };
        let (last_seen, history) = tokio::try_join!(
            state.store.last_seen(&node.id),
            state.store.status_history(&node.id),
        )?;
        Ok::<_, bitsage_core::Error>(Some((node, last_seen, history)))
    }
    .await;
    let step = |id: &str, done: bool, text: Markup| {
        html! {
            li data-step=(id) data-done=(done) {
                @if done { span.mark.yes aria-hidden="true" { "✓" } } @else { span.mark.no aria-hidden="true" { "…" } }
                span { span.sr-only { @if done { "done: " } @else { "waiting: " } } (text) }
            }
        }
    };
    html! {
        section.panel #checklist data-live-region aria-labelledby="cl-title" aria-live="polite" {
            h2 #cl-title { "Your new node" }
            @match found {
                Err(e) => p.error { "The store did not answer: " (e) },
                Ok(None) => {
                    ul.checklist {
                        (step("registered", false, html! { "Registered — waiting for the agent to contact this coordinator" }))
                        (step("heartbeat", false, html! { "First heartbeat" }))
                        (step("probe", false, html! { "Probe proof passed" }))
                        (step("active", false, html! { "Active: eligible for work" }))
                    }
                    p.small.muted { "This list updates by itself." }
                }
                Ok(Some((node, last_seen, history))) => {
                    @let probed = node.status == NodeStatus::Active || history.iter().any(|h| h.to == NodeStatus::Active);
                    ul.checklist {
                        (step("registered", true, html! { "Registered as " a href={ "/nodes/" (node.id.as_str()) } { (node.id.as_str()) } " " (ago(node.registered_at)) }))
                        (step("heartbeat", last_seen.is_some(), html! { "First heartbeat" @if let Some(t) = last_seen { " — last " (ago(t)) } }))
                        (step("probe", probed, html! { "Probe proof passed" }))
                        (step("active", node.status == NodeStatus::Active, html! { "Active: eligible for work" @if node.status != NodeStatus::Active { " — now " (node.status.as_str()) ": " (node.status_reason) } }))
                    }
                }
            }
        }
    }
}
