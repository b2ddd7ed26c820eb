//! What a metrics scrape reads from the HSM: identity and the model's
//! gauges, under the model's lock for the microseconds a count takes.

use std::sync::Arc;

use super::HsmState;
use crate::metrics::{Observation, Source, Stats};

impl Source for HsmState {
    fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn observe(&self) -> Observation {
        let faults = self.faults.as_ref().map(|f| f.injected());
        let hsm = self.hsm();
        let info = hsm.cluster_info();
        Observation {
            hsm: hsm.hsm_id().to_string(),
            cluster: info.cluster.id.to_string(),
            sessions: hsm.session_count(),
            users_locked: hsm.locked_user_count(),
            keys: hsm.key_census(),
            faults,
        }
    }
}
