//! Carriers: switchyard's lower-case carrier codes and eBay's shipping
//! carrier codes (the `ShippingCarrier` values of eBay's GeteBayDetails,
//! which `createShippingFulfillment` validates). eBay links the tracking
//! number to the carrier's site only for a code it knows, so pushes send
//! eBay's spelling, and normalization reads it back as switchyard's code.

/// `(switchyard code, eBay code)`.
const CARRIERS: &[(&str, &str)] = &[
    ("ups", "UPS"),
    ("usps", "USPS"),
    ("fedex", "FedEx"),
    ("dhl", "DHL"),
    ("deutsche_post", "DeutschePost"),
    ("royal_mail", "RoyalMail"),
    ("parcelforce", "Parcelforce"),
    ("canada_post", "CanadaPost"),
    ("purolator", "Purolator"),
    ("australia_post", "AustraliaPost"),
    ("dpd", "DPD"),
    ("gls", "GLS"),
    ("hermes", "Hermes"),
    ("postnl", "PostNL"),
    ("colissimo", "Colissimo"),
    ("ontrac", "OnTrac"),
];

/// Letters and digits only, lower case: `"Deutsche Post"`, `deutsche_post`
/// and `DeutschePost` are one carrier.
fn folded(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn known(name: &str) -> Option<(&'static str, &'static str)> {
    let key = folded(name);
    if key.is_empty() {
        return None;
    }
    CARRIERS
        .iter()
        .copied()
        .find(|(code, ebay)| folded(code) == key || folded(ebay) == key)
}

/// The code to send to eBay: a known carrier's eBay code, else the carrier as
/// given without spaces (eBay's codes have none; an unknown one is refused by
/// eBay with a message that names it).
pub fn ebay_code(carrier: &str) -> String {
    match known(carrier) {
        Some((_, ebay)) => ebay.to_owned(),
        None => carrier.split_whitespace().collect(),
    }
}

/// The switchyard code for a carrier eBay reports; unknown ones are kept as
/// eBay spells them.
pub fn canonical_carrier(ebay: &str) -> String {
    match known(ebay) {
        Some((code, _)) => code.to_owned(),
        None => ebay.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_go_out_in_ebays_spelling_and_come_back_as_codes() {
        assert_eq!(ebay_code("ups"), "UPS");
        assert_eq!(ebay_code("fedex"), "FedEx");
        assert_eq!(ebay_code("deutsche_post"), "DeutschePost");
        assert_eq!(ebay_code("Deutsche Post"), "DeutschePost");
        assert_eq!(ebay_code("royal-mail"), "RoyalMail");
        assert_eq!(ebay_code(" Pony Express "), "PonyExpress");
        for (code, ebay) in CARRIERS {
            assert_eq!(ebay_code(code), *ebay);
            assert_eq!(canonical_carrier(ebay), *code);
        }
        // The spelling the real DE payload's shipping step uses.
        assert_eq!(canonical_carrier("Deutsche Post"), "deutsche_post");
        assert_eq!(canonical_carrier("Pony Express"), "Pony Express");
        assert_eq!(canonical_carrier(""), "");
    }
}
