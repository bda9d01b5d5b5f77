//! XID events: a background thread waits on an NVML event set and buffers the critical XID
//! errors per device until the next sample takes them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bitsage_core::gpu::XidEvent;

use crate::nvml::NvmlInner;

/// At most this many events are kept per device between two samples (the newest win).
const MAX_PENDING: usize = 256;

/// Which devices are watched and the events not yet taken by a sample.
#[derive(Debug, Default)]
pub(crate) struct XidWatch {
    state: Mutex<XidState>,
}

#[derive(Debug, Default)]
struct XidState {
    /// Devices registered for XID events; the others report `xid_events: None`.
    watched: HashSet<String>,
    pending: HashMap<String, Vec<XidEvent>>,
}

impl XidWatch {
    fn lock(&self) -> MutexGuard<'_, XidState> {
        // Buffered events stay valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The events seen on `uuid` since the previous call: `None` when the device is not
    /// watched (unsupported), `Some(vec![])` when watched and quiet.
    pub(crate) fn take(&self, uuid: &str) -> Option<Vec<XidEvent>> {
        let mut st = self.lock();
        if !st.watched.contains(uuid) {
            return None;
        }
        Some(st.pending.remove(uuid).unwrap_or_default())
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn set_watched(&self, watched: HashSet<String>) {
        self.lock().watched = watched;
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn push(&self, uuid: String, event: XidEvent) {
        let mut st = self.lock();
        if !st.watched.contains(&uuid) {
            return;
        }
        let list = st.pending.entry(uuid).or_default();
        if list.len() >= MAX_PENDING {
            list.remove(0);
        }
        list.push(event);
    }
}

/// Starts the watcher thread; it holds the NVML handle until the source is dropped.
#[cfg(target_os = "linux")]
pub(crate) fn start_watcher(inner: &Arc<NvmlInner>) {
    let inner = Arc::clone(inner);
    let spawned = std::thread::Builder::new()
        .name("nvml-xid".into())
        .spawn(move || watch(&inner));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the XID watcher; XID events will be absent");
    }
}

/// NVML events are Linux-only: elsewhere XID events are reported as absent.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_watcher(_inner: &Arc<NvmlInner>) {}

#[cfg(target_os = "linux")]
fn watch(inner: &NvmlInner) {
    use std::sync::atomic::Ordering;

    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::error::NvmlError;

    let nvml = &inner.nvml;
    let Ok(count) = nvml.device_count() else {
        return;
    };
    // Devices that say they support XID events.
    let mut candidates: Vec<(u32, String)> = (0..count)
        .filter_map(|i| {
            let d = nvml.device_by_index(i).ok()?;
            let types = d.supported_event_types().ok()?;
            types
                .contains(EventTypes::CRITICAL_XID_ERROR)
                .then(|| d.uuid().ok().map(|u| (i, u)))?
        })
        .collect();
    // A failed registration frees the whole set (NVML's rule), so start over without the
    // device that failed.
    if candidates.is_empty() {
        return;
    }
    let set = loop {
        let Ok(fresh) = nvml.create_event_set() else {
            return;
        };
        let mut set = Some(fresh);
        let mut failed = None;
        for (pos, (i, _)) in candidates.iter().enumerate() {
            let Some(s) = set.take() else {
                break;
            };
            let registered = nvml
                .device_by_index(*i)
                .map_err(Into::into)
                .and_then(|d| d.register_events(EventTypes::CRITICAL_XID_ERROR, s));
            match registered {
                Ok(s) => set = Some(s),
                Err(e) => {
                    tracing::debug!(index = i, error = %e.error, "XID events unavailable");
                    failed = Some(pos);
                    break;
                }
            }
        }
        match (failed, set) {
            (None, Some(s)) => break s,
            (Some(pos), _) => {
                candidates.remove(pos);
                if candidates.is_empty() {
                    return;
                }
            }
            (None, None) => return,
        }
    };
    inner
        .xid
        .set_watched(candidates.into_iter().map(|(_, u)| u).collect());

    while !inner.stop.load(Ordering::Relaxed) {
        match set.wait(500) {
            Ok(ev) => {
                let code = match ev.event_data {
                    Some(XidError::Value(code)) => code,
                    _ => continue,
                };
                if let Ok(uuid) = ev.device.uuid() {
                    tracing::warn!(%uuid, xid = code, "GPU XID error");
                    inner.xid.push(
                        uuid,
                        XidEvent {
                            code,
                            at: bitsage_core::time::now(),
                        },
                    );
                }
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                tracing::debug!(error = %e, "NVML event wait failed");
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwatched_devices_report_absent_and_watched_ones_drain() {
        let w = XidWatch::default();
        assert_eq!(w.take("GPU-a"), None);
        w.set_watched(["GPU-a".to_string()].into_iter().collect());
        assert_eq!(w.take("GPU-a"), Some(vec![]));
        let at = bitsage_core::time::now();
        w.push("GPU-a".into(), XidEvent { code: 79, at });
        w.push("GPU-b".into(), XidEvent { code: 13, at });
        assert_eq!(w.take("GPU-a"), Some(vec![XidEvent { code: 79, at }]));
        assert_eq!(w.take("GPU-a"), Some(vec![]));
        assert_eq!(w.take("GPU-b"), None);
        for i in 0..(MAX_PENDING as u64 + 10) {
            w.push("GPU-a".into(), XidEvent { code: i, at });
        }
        let got = w.take("GPU-a").unwrap();
        assert_eq!(got.len(), MAX_PENDING);
        assert_eq!(got.last().map(|e| e.code), Some(MAX_PENDING as u64 + 9));
    }
}
