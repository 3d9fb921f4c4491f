//! The channels built into this daemon: one [`ChannelDescriptor`] per
//! channel crate, in one static list. A descriptor is all the daemon knows
//! of a channel: its constant capabilities, how to read its account keys
//! from the config, the settings `switchyard replay` runs its fixtures
//! with, and (through those settings) how to build its connector. Adding a
//! channel is its crate, one line here and its fixtures folder.
//!
//! A leaf (it names the channel crates and nothing else of this crate):
//! the config reader looks channels up here to read their keys, and
//! `channels` builds each account's connector from what it finds.

use switchyard_contract::{Channel, ChannelDescriptor};

/// Every built-in channel.
pub static CHANNELS: &[ChannelDescriptor] =
    &[switchyard_shopify::DESCRIPTOR, switchyard_ebay::DESCRIPTOR];

/// The built-in channel `channel`, if this build has it.
pub fn descriptor(channel: Channel) -> Option<&'static ChannelDescriptor> {
    CHANNELS.iter().find(|d| d.channel == channel)
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
    fn each_channel_is_listed_at_most_once() {
        for channel in Channel::ALL {
            let n = CHANNELS.iter().filter(|d| d.channel == channel).count();
            assert!(n <= 1, "{channel} is listed {n} times");
        }
        assert!(descriptor(Channel::Shopify).is_some());
    }
}
