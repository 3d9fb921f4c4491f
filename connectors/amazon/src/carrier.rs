//! Carriers: switchyard's lower-case carrier codes (what `switchyard ship
//! --carrier` and destinations report) and the values Amazon accepts as a
//! shipment's `carrierCode`. Amazon keeps a fixed list of carrier codes (the
//! `CarrierCode` values of its order-fulfillment feeds, which
//! `confirmShipment` shares); a carrier not on it is sent as `Other` with its
//! name in `carrierName`, which Amazon requires in that case. Packages that
//! Amazon reports back name their carrier the same way and are read back to
//! switchyard codes, so that a shipment pushed as `ups` reads back as `ups`.

/// `(switchyard code, Amazon carrier code, other spellings)`. Matching
/// ignores case, spaces, `-`, `_`, `.` and `!`.
const CARRIERS: &[(&str, &str, &[&str])] = &[
    ("ups", "UPS", &["unitedparcelservice"]),
    ("usps", "USPS", &["unitedstatespostalservice"]),
    ("fedex", "FedEx", &["federalexpress"]),
    ("dhl", "DHL", &["dhlexpress"]),
    ("canada_post", "Canada Post", &[]),
    ("royal_mail", "Royal Mail", &[]),
    ("parcelforce", "Parcelforce", &[]),
    ("dpd", "DPD", &[]),
    ("gls", "GLS", &[]),
    ("deutsche_post", "Deutsche Post", &[]),
    (
        "hermes_de",
        "Hermes Logistik Gruppe",
        &["hermeslogistikgruppe"],
    ),
    ("la_poste", "La Poste", &[]),
    ("chronopost", "Chronopost", &[]),
    ("poste_italiane", "Poste Italiane", &[]),
    ("sda", "SDA", &[]),
    ("tnt", "TNT", &[]),
    ("yodel", "Yodel", &[]),
    ("ontrac", "OnTrac", &[]),
    ("lasership", "Lasership", &[]),
    ("osm", "OSM", &["osmworldwide"]),
    ("fedex_smartpost", "FedEx SmartPost", &[]),
    ("ups_mail_innovations", "UPS Mail Innovations", &["upsmi"]),
    ("dhl_global_mail", "DHL Global Mail", &[]),
    ("yamato", "YAMATO", &["yamatotransport"]),
    ("sagawa", "SAGAWA", &["sagawaexpress"]),
    ("nippon_express", "NITTSU", &["nipponexpress"]),
    ("blue_dart", "BlueDart", &[]),
    ("aramex", "Aramex", &[]),
    ("india_post", "India Post", &[]),
    ("dtdc", "DTDC", &[]),
    ("delhivery", "Delhivery", &[]),
    ("fastway", "Fastway", &[]),
];

/// Amazon's code for a carrier it does not list.
pub const OTHER: &str = "Other";

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '!'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn lookup(name: &str) -> Option<(&'static str, &'static str)> {
    let key = squash(name);
    if key.is_empty() {
        return None;
    }
    CARRIERS
        .iter()
        .find(|(code, amazon, spellings)| {
            squash(code) == key || squash(amazon) == key || spellings.contains(&key.as_str())
        })
        .map(|(code, amazon, _)| (*code, *amazon))
}

/// `(carrierCode, carrierName)` for `confirmShipment`: a listed carrier by
/// its code alone, anything else as `Other` with the carrier as given.
pub fn amazon_carrier(carrier: &str) -> (String, Option<String>) {
    match lookup(carrier) {
        Some((_, amazon)) => (amazon.to_owned(), None),
        None => (OTHER.to_owned(), Some(carrier.trim().to_owned())),
    }
}

/// The switchyard code for a carrier Amazon names; unknown names are kept
/// as Amazon has them.
pub fn canonical_carrier(amazon: &str) -> String {
    lookup(amazon)
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| amazon.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_spellings_map_to_amazon_codes() {
        assert_eq!(amazon_carrier("ups"), ("UPS".into(), None));
        assert_eq!(amazon_carrier("FedEx"), ("FedEx".into(), None));
        assert_eq!(amazon_carrier("royal-mail"), ("Royal Mail".into(), None));
        assert_eq!(amazon_carrier("Canada Post"), ("Canada Post".into(), None));
        assert_eq!(
            amazon_carrier("UPSMI"),
            ("UPS Mail Innovations".into(), None)
        );
        assert_eq!(
            amazon_carrier(" Pony Express "),
            ("Other".into(), Some("Pony Express".into()))
        );
        assert_eq!(amazon_carrier(""), ("Other".into(), Some(String::new())));
    }

    #[test]
    fn amazon_codes_read_back_as_switchyard_codes() {
        for (code, amazon, _) in CARRIERS {
            assert_eq!(canonical_carrier(amazon), *code);
            assert_eq!(amazon_carrier(code).0, *amazon);
        }
        assert_eq!(canonical_carrier("Royal Mail"), "royal_mail");
        assert_eq!(canonical_carrier("Pony Express"), "Pony Express");
    }
}
