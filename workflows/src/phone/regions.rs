//! Where a phone number rings, as far as its digits tell: the region (a US state or Canadian
//! province for North American numbers, else the country) and the IANA timezones the called
//! person may be in.
//!
//! North American numbers are placed by area code. An area code whose territory spans more
//! than one timezone lists every one of them (the Florida panhandle, western Kansas, northern
//! Idaho, most of Indiana's and Kentucky's …); so does a country that spans several. Callers
//! treat such a list as "the person may be in any of these" and keep to the hours that hold in
//! all of them. Numbers carry no location once ported or for mobiles that moved: a lead's own
//! timezone, when the business knows it, always wins over this table.
//!
//! The table is this project's own, written from the public numbering plans (NANPA's area code
//! assignments by state and province) and the IANA zone of each territory. Area codes not in it
//! (new overlays, non-geographic codes such as 800 or 500) give the whole country's zones.

/// What the digits of a number say about where it rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneRegion {
    /// `US-CA`, `CA-ON`, or the country (`GB`, `US` when the area code is not placed).
    pub code: String,
    /// The timezones the person may be in; more than one when the region spans several.
    pub zones: Vec<&'static str>,
}

/// The region of a North American (`+1`) number with area code `area` in country `country`
/// (`US`, `CA`, or another NANP member).
pub fn north_american(country: &str, area: &str) -> Option<PhoneRegion> {
    if let Some((state, zones)) = AREA_CODES
        .iter()
        .find(|(_, _, codes)| codes.split(' ').any(|c| c == area))
        .map(|(state, zones, _)| (*state, *zones))
    {
        let zones = OVERRIDES
            .iter()
            .find(|(code, _)| *code == area)
            .map_or(zones, |(_, zones)| *zones);
        let country = if state.len() == 2 && CANADA.contains(&state) {
            "CA"
        } else {
            "US"
        };
        return Some(PhoneRegion {
            code: format!("{country}-{state}"),
            zones: zones.split(' ').collect(),
        });
    }
    country_region(country)
}

/// The region of a number of country `country` (ISO 3166 code): the zones the country spans.
pub fn country_region(country: &str) -> Option<PhoneRegion> {
    COUNTRIES
        .iter()
        .find(|(code, _)| *code == country)
        .map(|(code, zones)| PhoneRegion {
            code: (*code).to_owned(),
            zones: zones.split(' ').collect(),
        })
}

const CANADA: [&str; 13] = [
    "AB", "BC", "MB", "NB", "NL", "NS", "ON", "PE", "QC", "SK", "YT", "NT", "NU",
];

/// US states and territories and Canadian provinces: their usual zone and their area codes.
const AREA_CODES: &[(&str, &str, &str)] = &[
    ("AL", "America/Chicago", "205 251 256 334 483 659 938"),
    ("AK", "America/Anchorage America/Adak", "907"),
    ("AZ", "America/Phoenix", "480 520 602 623 928"),
    ("AR", "America/Chicago", "327 479 501 870"),
    (
        "CA",
        "America/Los_Angeles",
        "209 213 279 310 323 341 350 357 369 408 415 424 442 510 530 559 562 619 626 628 650 \
         657 661 669 707 714 738 747 760 805 818 820 831 837 840 858 909 916 925 949 951",
    ),
    ("CO", "America/Denver", "303 719 720 970 983"),
    ("CT", "America/New_York", "203 475 860 959"),
    ("DE", "America/New_York", "302"),
    ("DC", "America/New_York", "202 771"),
    (
        "FL",
        "America/New_York",
        "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904 \
         941 954",
    ),
    (
        "GA",
        "America/New_York",
        "229 404 470 478 678 706 762 770 912 943",
    ),
    ("HI", "Pacific/Honolulu", "808"),
    ("ID", "America/Boise America/Los_Angeles", "208 986"),
    (
        "IL",
        "America/Chicago",
        "217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 861 872",
    ),
    (
        "IN",
        "America/Indiana/Indianapolis",
        "219 260 317 463 574 765 812 930",
    ),
    ("IA", "America/Chicago", "319 515 563 641 712"),
    ("KS", "America/Chicago", "316 620 785 913"),
    ("KY", "America/New_York", "270 364 502 606 859"),
    ("LA", "America/Chicago", "225 318 337 504 985"),
    ("ME", "America/New_York", "207"),
    ("MD", "America/New_York", "227 240 301 410 443 667"),
    (
        "MA",
        "America/New_York",
        "339 351 413 508 617 774 781 857 978",
    ),
    (
        "MI",
        "America/Detroit",
        "231 248 269 313 517 586 616 679 734 810 906 947 989",
    ),
    ("MN", "America/Chicago", "218 320 507 612 651 763 924 952"),
    ("MS", "America/Chicago", "228 601 662 769"),
    (
        "MO",
        "America/Chicago",
        "235 314 417 557 573 636 660 816 975",
    ),
    ("MT", "America/Denver", "406"),
    ("NE", "America/Chicago", "308 402 531"),
    ("NV", "America/Los_Angeles", "702 725 775"),
    ("NH", "America/New_York", "603"),
    (
        "NJ",
        "America/New_York",
        "201 551 609 640 732 848 856 862 908 973",
    ),
    ("NM", "America/Denver", "505 575"),
    (
        "NY",
        "America/New_York",
        "212 315 329 332 347 363 516 518 585 607 624 631 646 680 716 718 838 845 914 917 929 934",
    ),
    (
        "NC",
        "America/New_York",
        "252 336 472 704 743 828 910 919 980 984",
    ),
    ("ND", "America/Chicago America/Denver", "701"),
    (
        "OH",
        "America/New_York",
        "216 220 234 283 326 330 380 419 436 440 513 567 614 740 937",
    ),
    ("OK", "America/Chicago", "405 539 572 580 918"),
    ("OR", "America/Los_Angeles", "458 503 541 971"),
    (
        "PA",
        "America/New_York",
        "215 223 267 272 412 445 484 570 582 610 717 724 814 835 878",
    ),
    ("RI", "America/New_York", "401"),
    ("SC", "America/New_York", "803 821 839 843 854 864"),
    ("SD", "America/Chicago America/Denver", "605"),
    ("TN", "America/Chicago", "423 615 629 731 865 901 931"),
    (
        "TX",
        "America/Chicago",
        "210 214 254 281 325 346 361 409 430 432 469 512 621 682 713 726 737 806 817 830 832 \
         903 915 936 940 945 956 972 979",
    ),
    ("UT", "America/Denver", "385 435 801"),
    ("VT", "America/New_York", "802"),
    (
        "VA",
        "America/New_York",
        "276 434 540 571 686 703 757 804 826 948",
    ),
    ("WA", "America/Los_Angeles", "206 253 360 425 509 564"),
    ("WV", "America/New_York", "304 681"),
    ("WI", "America/Chicago", "262 274 414 534 608 715 920"),
    ("WY", "America/Denver", "307"),
    ("PR", "America/Puerto_Rico", "787 939"),
    ("VI", "America/St_Thomas", "340"),
    ("GU", "Pacific/Guam", "671"),
    ("MP", "Pacific/Saipan", "670"),
    ("AS", "Pacific/Pago_Pago", "684"),
    ("AB", "America/Edmonton", "368 403 587 780 825"),
    ("BC", "America/Vancouver", "236 250 257 604 672 778"),
    ("MB", "America/Winnipeg", "204 431 584"),
    ("NB", "America/Moncton", "428 506"),
    ("NL", "America/St_Johns America/Goose_Bay", "709 879"),
    ("NS", "America/Halifax", "782 902"),
    (
        "ON",
        "America/Toronto",
        "226 249 289 343 365 382 416 437 519 548 613 647 683 705 742 753 807 905 942",
    ),
    (
        "QC",
        "America/Toronto",
        "263 354 367 418 438 450 468 514 579 581 819 873",
    ),
    ("SK", "America/Regina", "306 474 639"),
    (
        "NT",
        "America/Edmonton America/Whitehorse America/Winnipeg America/Toronto",
        "867",
    ),
];

/// Area codes whose territory crosses a timezone line their state's does not.
const OVERRIDES: &[(&str, &str)] = &[
    // The Florida panhandle west of the Apalachicola keeps Central time.
    ("850", "America/New_York America/Chicago"),
    ("448", "America/New_York America/Chicago"),
    // Northern Arizona's Navajo Nation keeps daylight saving time.
    ("928", "America/Phoenix America/Denver"),
    // North-western and south-western Indiana keep Central time.
    ("219", "America/Chicago"),
    ("574", "America/Indiana/Indianapolis America/Chicago"),
    ("812", "America/Indiana/Indianapolis America/Chicago"),
    ("930", "America/Indiana/Indianapolis America/Chicago"),
    // Western Kansas and Nebraska keep Mountain time.
    ("620", "America/Chicago America/Denver"),
    ("785", "America/Chicago America/Denver"),
    ("308", "America/Chicago America/Denver"),
    // Western Kentucky keeps Central time.
    ("270", "America/New_York America/Chicago"),
    ("364", "America/New_York America/Chicago"),
    // Michigan's Upper Peninsula borders Wisconsin on Central time.
    ("906", "America/Detroit America/Menominee"),
    // Eastern Oregon (Malheur county) and West Wendover, Nevada keep Mountain time.
    ("541", "America/Los_Angeles America/Boise"),
    ("458", "America/Los_Angeles America/Boise"),
    ("775", "America/Los_Angeles America/Denver"),
    // East Tennessee keeps Eastern time; 931 straddles the line.
    ("423", "America/New_York"),
    ("865", "America/New_York"),
    ("931", "America/Chicago America/New_York"),
    // El Paso and the far west of Texas keep Mountain time.
    ("915", "America/Denver"),
    ("432", "America/Chicago America/Denver"),
    // North-eastern and south-eastern British Columbia keep Mountain time.
    (
        "250",
        "America/Vancouver America/Dawson_Creek America/Edmonton",
    ),
    (
        "236",
        "America/Vancouver America/Dawson_Creek America/Edmonton",
    ),
    (
        "257",
        "America/Vancouver America/Dawson_Creek America/Edmonton",
    ),
    (
        "672",
        "America/Vancouver America/Dawson_Creek America/Edmonton",
    ),
    (
        "778",
        "America/Vancouver America/Dawson_Creek America/Edmonton",
    ),
    // North-western Ontario keeps Central time.
    ("807", "America/Toronto America/Winnipeg"),
    // Eastern Quebec's Lower North Shore and the Magdalen Islands keep Atlantic time.
    ("418", "America/Toronto America/Halifax"),
    ("581", "America/Toronto America/Halifax"),
    ("367", "America/Toronto America/Halifax"),
];

/// Countries (ISO 3166) and the zones they span.
const COUNTRIES: &[(&str, &str)] = &[
    (
        "US",
        "America/New_York America/Chicago America/Denver America/Phoenix America/Los_Angeles \
         America/Anchorage Pacific/Honolulu",
    ),
    (
        "CA",
        "America/St_Johns America/Halifax America/Toronto America/Winnipeg America/Regina \
         America/Edmonton America/Vancouver",
    ),
    (
        "MX",
        "America/Cancun America/Mexico_City America/Mazatlan America/Hermosillo America/Tijuana",
    ),
    (
        "BR",
        "America/Noronha America/Sao_Paulo America/Manaus America/Rio_Branco",
    ),
    (
        "AU",
        "Australia/Sydney Australia/Brisbane Australia/Adelaide Australia/Darwin Australia/Perth",
    ),
    ("NZ", "Pacific/Auckland"),
    ("ES", "Europe/Madrid Atlantic/Canary"),
    ("PT", "Europe/Lisbon Atlantic/Azores"),
    ("GB", "Europe/London"),
    ("IE", "Europe/Dublin"),
    ("FR", "Europe/Paris"),
    ("DE", "Europe/Berlin"),
    ("IT", "Europe/Rome"),
    ("NL", "Europe/Amsterdam"),
    ("BE", "Europe/Brussels"),
    ("LU", "Europe/Luxembourg"),
    ("CH", "Europe/Zurich"),
    ("AT", "Europe/Vienna"),
    ("DK", "Europe/Copenhagen"),
    ("SE", "Europe/Stockholm"),
    ("NO", "Europe/Oslo"),
    ("FI", "Europe/Helsinki"),
    ("IS", "Atlantic/Reykjavik"),
    ("PL", "Europe/Warsaw"),
    ("CZ", "Europe/Prague"),
    ("SK", "Europe/Bratislava"),
    ("HU", "Europe/Budapest"),
    ("RO", "Europe/Bucharest"),
    ("BG", "Europe/Sofia"),
    ("GR", "Europe/Athens"),
    ("HR", "Europe/Zagreb"),
    ("SI", "Europe/Ljubljana"),
    ("RS", "Europe/Belgrade"),
    ("EE", "Europe/Tallinn"),
    ("LV", "Europe/Riga"),
    ("LT", "Europe/Vilnius"),
    ("UA", "Europe/Kiev"),
    ("TR", "Europe/Istanbul"),
    ("IL", "Asia/Jerusalem"),
    ("AE", "Asia/Dubai"),
    ("SA", "Asia/Riyadh"),
    ("IN", "Asia/Kolkata"),
    ("PK", "Asia/Karachi"),
    ("SG", "Asia/Singapore"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("PH", "Asia/Manila"),
    ("HK", "Asia/Hong_Kong"),
    ("JP", "Asia/Tokyo"),
    ("KR", "Asia/Seoul"),
    ("CN", "Asia/Shanghai"),
    ("TW", "Asia/Taipei"),
    ("TH", "Asia/Bangkok"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("ID", "Asia/Jakarta Asia/Makassar Asia/Jayapura"),
    ("ZA", "Africa/Johannesburg"),
    ("NG", "Africa/Lagos"),
    ("KE", "Africa/Nairobi"),
    ("EG", "Africa/Cairo"),
    ("MA", "Africa/Casablanca"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("CL", "America/Santiago"),
    ("CO", "America/Bogota"),
    ("PE", "America/Lima"),
    ("DO", "America/Santo_Domingo"),
    ("JM", "America/Jamaica"),
    ("PR", "America/Puerto_Rico"),
    ("BS", "America/Nassau"),
    ("TT", "America/Port_of_Spain"),
    ("BB", "America/Barbados"),
    ("BM", "Atlantic/Bermuda"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_of_the_table_is_a_known_iana_zone_and_area_codes_are_unique() {
        let zones = AREA_CODES
            .iter()
            .map(|(_, z, _)| *z)
            .chain(OVERRIDES.iter().map(|(_, z)| *z))
            .chain(COUNTRIES.iter().map(|(_, z)| *z));
        for list in zones {
            for zone in list.split(' ') {
                assert!(zone.parse::<chrono_tz::Tz>().is_ok(), "{zone}");
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (state, _, codes) in AREA_CODES {
            for code in codes.split(' ') {
                assert!(seen.insert(code), "area code {code} twice ({state})");
            }
        }
        for (code, _) in OVERRIDES {
            assert!(seen.contains(code), "override of unplaced area code {code}");
        }
    }

    #[test]
    fn area_codes_give_the_state_and_its_zones() {
        let la = north_american("US", "213").unwrap();
        assert_eq!(
            (la.code.as_str(), la.zones),
            ("US-CA", vec!["America/Los_Angeles"])
        );
        let panhandle = north_american("US", "850").unwrap();
        assert_eq!(panhandle.code, "US-FL");
        assert_eq!(panhandle.zones.len(), 2);
        assert_eq!(north_american("CA", "416").unwrap().code, "CA-ON");
        // A code the table does not place (toll-free) gives the whole country.
        assert_eq!(north_american("US", "800").unwrap().code, "US");
        assert_eq!(country_region("GB").unwrap().zones, ["Europe/London"]);
        assert_eq!(country_region("XX"), None);
    }
}
