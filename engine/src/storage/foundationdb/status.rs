//! The cluster's own account of itself: FoundationDB's status document (the special key
//! `\xff\xff/status/json`), cut down to what an operator checks first.

use serde_json::Value;

use crate::storage::{ClusterSummary, StorageError};

/// Where a client reads the status document (API version 630 and later).
pub(super) const STATUS_KEY: &[u8] = b"\xff\xff/status/json";

/// The summary of a status document. Fields the document lacks (a cluster that has not
/// recovered reports little) stay unknown rather than taken as good.
pub(super) fn summarize(document: &[u8]) -> Result<ClusterSummary, StorageError> {
    let doc: Value = serde_json::from_slice(document).map_err(|_| StorageError::Corrupt {
        key: "\\xff\\xff/status/json".into(),
        reason: "the cluster's status document is not JSON",
    })?;
    let at = |path: &str| doc.pointer(path);
    let count = |path: &str| at(path).and_then(Value::as_object).map(|o| o.len());
    let messages = at("/cluster/messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            at("/client/messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|m| m.get("description").or(m.get("name"))?.as_str())
        .map(String::from)
        .collect();
    Ok(ClusterSummary {
        available: at("/client/database_status/available").and_then(Value::as_bool),
        healthy: at("/client/database_status/healthy").and_then(Value::as_bool),
        coordinators_reachable: at("/client/coordinators/quorum_reachable")
            .and_then(Value::as_bool),
        recovery_state: at("/cluster/recovery_state/name")
            .and_then(Value::as_str)
            .map(String::from),
        redundancy_mode: at("/cluster/configuration/redundancy_mode")
            .and_then(Value::as_str)
            .map(String::from),
        zone_failures_tolerated: at(
            "/cluster/fault_tolerance/max_zone_failures_without_losing_data",
        )
        .and_then(Value::as_i64),
        machines: count("/cluster/machines"),
        processes: count("/cluster/processes"),
        messages,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_document_is_summarised_and_what_it_lacks_stays_unknown() {
        let doc = serde_json::json!({
            "client": {
                "database_status": {"available": true, "healthy": false},
                "coordinators": {"quorum_reachable": true},
                "messages": [],
            },
            "cluster": {
                "recovery_state": {"name": "fully_recovered"},
                "configuration": {"redundancy_mode": "double"},
                "fault_tolerance": {"max_zone_failures_without_losing_data": 1},
                "machines": {"m1": {}, "m2": {}, "m3": {}},
                "processes": {"p1": {}, "p2": {}, "p3": {}, "p4": {}},
                "messages": [{"name": "storage_servers_error", "description": "Server is unhealthy."}],
            },
        });
        let s = summarize(doc.to_string().as_bytes()).unwrap();
        assert_eq!(s.available, Some(true));
        assert_eq!(s.healthy, Some(false));
        assert_eq!(s.coordinators_reachable, Some(true));
        assert_eq!(s.recovery_state.as_deref(), Some("fully_recovered"));
        assert_eq!(s.redundancy_mode.as_deref(), Some("double"));
        assert_eq!(s.zone_failures_tolerated, Some(1));
        assert_eq!((s.machines, s.processes), (Some(3), Some(4)));
        assert_eq!(s.messages, ["Server is unhealthy."]);

        // A client that cannot reach the coordinators knows only that.
        let bare = serde_json::json!({"client": {"coordinators": {"quorum_reachable": false}}});
        let s = summarize(bare.to_string().as_bytes()).unwrap();
        assert_eq!(s.coordinators_reachable, Some(false));
        assert_eq!((s.available, s.healthy, s.machines), (None, None, None));

        assert!(summarize(b"not json").is_err());
    }
}
