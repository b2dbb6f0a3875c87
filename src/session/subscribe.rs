//! Validation of a SUBSCRIBE against what the broker offers and what the `auth_on_subscribe`
//! hooks allow: each filter is granted (QoS capped at the broker's maximum, possibly rewritten
//! by a hook) or refused with the 5.0 reason code that says why.

use std::collections::HashMap;

use crate::protocol::{ReasonCode, Subscribe, TopicFilter};

use super::actions::{SubscribeEntry, SubscribeRequest};
use super::limits::BrokerLimits;
use super::state::{level_count, StoredSubscription, SubscribeAuthorizer};
use crate::hooks::Decision;

/// Grants or refuses each filter of `subscribe`. The second value is set when a hook's denial
/// closes the connection: the code to close with.
pub(crate) fn validate_subscribe(
    limits: &BrokerLimits,
    existing: &HashMap<TopicFilter, StoredSubscription>,
    subscribe: Subscribe,
    authorize: SubscribeAuthorizer<'_>,
) -> (SubscribeRequest, Option<ReasonCode>) {
    let id = subscribe.properties.subscription_identifier;
    let mut entries = Vec::with_capacity(subscribe.filters.len());
    let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
    for subscription in subscribe.filters {
        let mut filter = subscription.filter;
        let refusal = if id.is_some() && !limits.subscription_identifiers_available {
            Some(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
        } else if filter.shared().is_some() && !limits.shared_subscription_available {
            Some(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
        } else if filter.has_wildcards() && !limits.wildcard_subscription_available {
            Some(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
        } else if level_count(filter.as_str()) > usize::from(limits.max_topic_levels) {
            Some(ReasonCode::TOPIC_FILTER_INVALID)
        } else {
            None
        };
        if let Some(code) = refusal {
            reason_codes.push(code);
            continue;
        }
        let mut options = subscription.options;
        options.qos = options.qos.min(limits.maximum_qos);
        match authorize.decide(&filter, options.qos) {
            Decision::Allow(None) => {}
            Decision::Allow(Some(changes)) => {
                if let Some(rewritten) = changes.filter {
                    filter = rewritten;
                }
                if let Some(qos) = changes.qos {
                    // A hook may lower the grant, never raise it past what was asked.
                    options.qos = options.qos.min(qos);
                }
            }
            Decision::Deny(denial) => {
                if denial.disconnect {
                    let request = SubscribeRequest {
                        packet_id: subscribe.packet_id,
                        entries: Vec::new(),
                        reason_codes: Vec::new(),
                    };
                    return (request, Some(denial.code));
                }
                reason_codes.push(denial.code);
                continue;
            }
        }
        reason_codes.push(ReasonCode::granted(options.qos));
        let existed = existing.contains_key(&filter);
        entries.push(SubscribeEntry {
            filter,
            options,
            id,
            existed,
        });
    }
    let request = SubscribeRequest {
        packet_id: subscribe.packet_id,
        entries,
        reason_codes,
    };
    (request, None)
}
