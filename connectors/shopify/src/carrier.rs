//! Carrier names: switchyard's lower-case carrier codes (what `switchyard
//! ship --carrier` and destinations report) and the company names Shopify
//! recognises in `trackingInfo.company`. Shopify builds the tracking link
//! itself only for companies it knows by exactly these names, so pushes map
//! codes to names, and normalization maps names back so that a shipment
//! pushed as `ups` reads back as `ups`.

/// `(switchyard code, Shopify company, other spellings)`. Matching ignores
/// case, spaces, `-`, `_` and `.`.
const CARRIERS: &[(&str, &str, &[&str])] = &[
    ("ups", "UPS", &["unitedparcelservice"]),
    ("usps", "USPS", &["unitedstatespostalservice"]),
    ("fedex", "FedEx", &["federalexpress"]),
    ("dhl", "DHL Express", &["dhlexpress"]),
    ("dhl_ecommerce", "DHL eCommerce", &[]),
    ("canada_post", "Canada Post", &["canadapost"]),
    ("royal_mail", "Royal Mail", &["royalmail"]),
    ("dpd", "DPD", &[]),
    ("gls", "GLS", &[]),
    ("purolator", "Purolator", &[]),
    ("australia_post", "Australia Post", &["auspost"]),
    ("deutsche_post", "Deutsche Post", &[]),
    ("postnl", "PostNL", &[]),
    ("la_poste", "La Poste", &["colissimo"]),
    ("ontrac", "OnTrac", &[]),
    ("evri", "Evri", &["hermes"]),
];

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn find(name: &str) -> Option<&'static (&'static str, &'static str, &'static [&'static str])> {
    let key = squash(name);
    if key.is_empty() {
        return None;
    }
    CARRIERS.iter().find(|(code, company, aliases)| {
        squash(code) == key || squash(company) == key || aliases.contains(&key.as_str())
    })
}

/// The company name to send to Shopify: a known carrier's Shopify name, else
/// the carrier as given (then the tracking URL is what makes it clickable).
pub fn shopify_company(carrier: &str) -> String {
    find(carrier)
        .map(|c| c.1.to_owned())
        .unwrap_or_else(|| carrier.trim().to_owned())
}

/// The switchyard code for a company name Shopify reports; unknown names are
/// kept as Shopify has them.
pub fn canonical_carrier(company: &str) -> String {
    find(company)
        .map(|c| c.0.to_owned())
        .unwrap_or_else(|| company.trim().to_owned())
}

/// Whether Shopify knows this carrier by name (and so builds the link itself).
pub fn is_known(carrier: &str) -> bool {
    find(carrier).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_spellings_map_to_shopify_names() {
        assert_eq!(shopify_company("ups"), "UPS");
        assert_eq!(shopify_company("USPS"), "USPS");
        assert_eq!(shopify_company("fedex"), "FedEx");
        assert_eq!(shopify_company("FedEx"), "FedEx");
        assert_eq!(shopify_company("dhl"), "DHL Express");
        assert_eq!(shopify_company("canada post"), "Canada Post");
        assert_eq!(shopify_company("CanadaPost"), "Canada Post");
        assert_eq!(shopify_company("canada_post"), "Canada Post");
        assert_eq!(shopify_company("Royal Mail"), "Royal Mail");
        assert_eq!(shopify_company("royal-mail"), "Royal Mail");
        assert_eq!(shopify_company("dpd"), "DPD");
        assert_eq!(shopify_company(" Pony Express "), "Pony Express");
        assert!(!is_known("Pony Express"));
    }

    #[test]
    fn shopify_names_read_back_as_codes() {
        for (code, company, _) in CARRIERS {
            assert_eq!(canonical_carrier(company), *code);
            assert_eq!(shopify_company(code), *company);
        }
        assert_eq!(canonical_carrier("Pony Express"), "Pony Express");
    }
}
