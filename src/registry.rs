//! The channels built into this daemon: one [`Builtin`] per channel crate,
//! in one static list. It is all the daemon knows of a channel: its
//! descriptor (constant capabilities, how to read its account keys from the
//! config, the settings `switchyard replay` runs its fixtures with, and,
//! through those settings, how to build its connector) and its simulated
//! side (the crate's `sim` feature) for `demo`, `replay` and tests. Adding
//! a channel is its crate, one line here and its fixtures folder.
//!
//! A leaf (it names the channel crates and nothing else of this crate):
//! the config reader looks channels up here to read their keys, and
//! `channels` builds each account's connector from what it finds.

use switchyard_contract::testkit::SimFactory;
use switchyard_contract::{Channel, ChannelDescriptor};

/// One channel crate, as this daemon uses it.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub descriptor: ChannelDescriptor,
    /// The crate's simulated side (its `sim` feature).
    pub simulator: SimFactory,
}

/// Every built-in channel.
pub static CHANNELS: &[Builtin] = &[
    Builtin {
        descriptor: switchyard_shopify::DESCRIPTOR,
        simulator: switchyard_shopify::sim::simulator,
    },
    Builtin {
        descriptor: switchyard_etsy::DESCRIPTOR,
        simulator: switchyard_etsy::sim::simulator,
    },
    Builtin {
        descriptor: switchyard_ebay::DESCRIPTOR,
        simulator: switchyard_ebay::sim::simulator,
    },
    Builtin {
        descriptor: switchyard_amazon::DESCRIPTOR,
        simulator: switchyard_amazon::sim::simulator,
    },
];

/// The built-in channel `channel`, if this build has it.
pub fn builtin(channel: Channel) -> Option<&'static Builtin> {
    CHANNELS.iter().find(|b| b.descriptor.channel == channel)
}

/// The descriptor of the built-in channel `channel`, if this build has it.
pub fn descriptor(channel: Channel) -> Option<&'static ChannelDescriptor> {
    builtin(channel).map(|b| &b.descriptor)
}

/// Every built-in channel's descriptor (what the config reader takes).
pub fn descriptors() -> Vec<ChannelDescriptor> {
    CHANNELS.iter().map(|b| b.descriptor).collect()
}

/// Why a channel cannot be used, for messages: "no etsy connector in this
/// build yet".
pub fn not_built_in(channel: Channel) -> String {
    format!("no {channel} connector in this build yet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_is_listed_exactly_once() {
        // Every channel switchyard knows has its connector in this build.
        for channel in Channel::ALL {
            let n = CHANNELS
                .iter()
                .filter(|b| b.descriptor.channel == channel)
                .count();
            assert_eq!(n, 1, "{channel} is listed {n} times");
            assert_eq!(descriptor(channel).map(|d| d.channel), Some(channel));
        }
    }
}
