//! The fixed world the generator draws from: countries with their Cloudflare colos and access
//! networks (ASNs), hosting networks, crawlers, user agents with their TLS fingerprints, site kinds
//! with their URL layouts, and the words site names are made of.
//!
//! Everything here is static data plus [`World::build`], which gives every ASN its IPv4 prefixes
//! and an IPv6 /32. Prefix allocation uses a fixed internal seed, so an ASN owns the same prefixes
//! in every run whatever the user's seed: an IP always maps to the same ASN and country. Prefixes
//! never overlap and avoid private, shared, loopback, link-local, documentation, benchmarking and
//! multicast space. All strings are JSON-safe as they stand (no `"`, `\` or control characters).

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Kind of network an ASN is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetKind {
    /// Residential broadband or mobile: where people browse from.
    Access,
    /// Cloud and hosting: where botnets rent machines. Never in a site's normal client mix.
    Hosting,
    /// A search engine crawler's network (Googlebot, bingbot). In every site's normal mix.
    Crawler,
}

/// Regions a site's audience lives in; each has a country mix and main timezones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    NorthAmerica,
    Europe,
    AsiaPacific,
    LatinAmerica,
    Global,
}

impl Region {
    pub(crate) const ALL: [(Region, u32); 5] = [
        (Region::NorthAmerica, 34),
        (Region::Europe, 28),
        (Region::AsiaPacific, 18),
        (Region::LatinAmerica, 8),
        (Region::Global, 12),
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Region::NorthAmerica => "north-america",
            Region::Europe => "europe",
            Region::AsiaPacific => "asia-pacific",
            Region::LatinAmerica => "latin-america",
            Region::Global => "global",
        }
    }

    /// Candidate main timezones (UTC offset in minutes) of a site in this region.
    pub(crate) fn timezones(self) -> &'static [i32] {
        match self {
            Region::NorthAmerica => &[-300, -300, -360, -480],
            Region::Europe => &[0, 60, 60, 120],
            Region::AsiaPacific => &[330, 480, 540, 600],
            Region::LatinAmerica => &[-180, -360],
            Region::Global => &[-300, 0, 60],
        }
    }

    /// (country code, weight) of the audience.
    pub(crate) fn countries(self) -> &'static [(&'static str, u32)] {
        match self {
            Region::NorthAmerica => {
                &[("us", 780), ("ca", 90), ("mx", 40), ("gb", 30), ("in", 20), ("de", 20), ("br", 10), ("jp", 10)]
            }
            Region::Europe => &[
                ("de", 200),
                ("gb", 180),
                ("fr", 140),
                ("nl", 70),
                ("es", 80),
                ("it", 80),
                ("pl", 60),
                ("se", 30),
                ("ch", 30),
                ("us", 80),
                ("tr", 30),
                ("ua", 20),
            ],
            Region::AsiaPacific => &[
                ("jp", 250),
                ("kr", 120),
                ("in", 150),
                ("au", 100),
                ("sg", 60),
                ("id", 80),
                ("vn", 50),
                ("ph", 50),
                ("tw", 50),
                ("hk", 40),
                ("th", 50),
                ("us", 30),
            ],
            Region::LatinAmerica => &[("br", 500), ("mx", 200), ("ar", 100), ("co", 80), ("cl", 60), ("us", 60)],
            Region::Global => &[
                ("us", 300),
                ("in", 80),
                ("gb", 60),
                ("de", 60),
                ("br", 50),
                ("jp", 50),
                ("fr", 40),
                ("ca", 30),
                ("id", 30),
                ("au", 20),
                ("es", 20),
                ("mx", 20),
            ],
        }
    }
}

/// One country: ISO code (lower case, as Logpush sends it), its colos and its access networks.
pub(crate) struct CountryData {
    pub code: &'static str,
    /// (IATA colo, weight).
    pub colos: &'static [(&'static str, u32)],
    /// (ASN, weight) of residential and mobile networks.
    pub asns: &'static [(u32, u32)],
}

pub(crate) const COUNTRIES: &[CountryData] = &[
    CountryData {
        code: "us",
        colos: &[
            ("IAD", 16),
            ("EWR", 12),
            ("ORD", 12),
            ("DFW", 11),
            ("ATL", 10),
            ("LAX", 11),
            ("SJC", 9),
            ("SEA", 7),
            ("MIA", 7),
            ("DEN", 5),
        ],
        asns: &[(7922, 25), (7018, 18), (701, 12), (20115, 14), (22773, 6), (21928, 12), (6167, 8), (209, 5)],
    },
    CountryData { code: "ca", colos: &[("YYZ", 45), ("YUL", 25), ("YVR", 20), ("YYC", 10)], asns: &[(812, 30), (577, 30), (852, 25), (6327, 15)] },
    CountryData { code: "mx", colos: &[("QRO", 50), ("MEX", 35), ("GDL", 15)], asns: &[(8151, 55), (13999, 25), (17072, 20)] },
    CountryData { code: "br", colos: &[("GRU", 55), ("GIG", 25), ("POA", 10), ("FOR", 10)], asns: &[(28573, 35), (18881, 30), (7738, 15), (26599, 20)] },
    CountryData { code: "ar", colos: &[("EZE", 100)], asns: &[(7303, 55), (22927, 45)] },
    CountryData { code: "co", colos: &[("BOG", 100)], asns: &[(3816, 50), (10620, 50)] },
    CountryData { code: "cl", colos: &[("SCL", 100)], asns: &[(7418, 50), (27651, 50)] },
    CountryData { code: "gb", colos: &[("LHR", 75), ("MAN", 20), ("EDI", 5)], asns: &[(2856, 30), (5089, 22), (12576, 18), (5607, 18), (13285, 12)] },
    CountryData { code: "de", colos: &[("FRA", 50), ("DUS", 20), ("HAM", 15), ("MUC", 15)], asns: &[(3320, 45), (3209, 25), (6805, 18), (8881, 12)] },
    CountryData { code: "fr", colos: &[("CDG", 75), ("MRS", 15), ("LYS", 10)], asns: &[(3215, 40), (12322, 25), (5410, 18), (15557, 17)] },
    CountryData { code: "nl", colos: &[("AMS", 100)], asns: &[(1136, 50), (33915, 50)] },
    CountryData { code: "es", colos: &[("MAD", 65), ("BCN", 35)], asns: &[(3352, 50), (12479, 25), (12430, 25)] },
    CountryData { code: "it", colos: &[("MXP", 60), ("FCO", 40)], asns: &[(3269, 50), (30722, 25), (1267, 25)] },
    CountryData { code: "pl", colos: &[("WAW", 100)], asns: &[(5617, 60), (12741, 40)] },
    CountryData { code: "se", colos: &[("ARN", 100)], asns: &[(3301, 100)] },
    CountryData { code: "ch", colos: &[("ZRH", 70), ("GVA", 30)], asns: &[(3303, 100)] },
    CountryData { code: "ru", colos: &[("DME", 60), ("LED", 40)], asns: &[(12389, 45), (8359, 30), (3216, 25)] },
    CountryData { code: "ua", colos: &[("KBP", 100)], asns: &[(15895, 100)] },
    CountryData { code: "tr", colos: &[("IST", 100)], asns: &[(9121, 100)] },
    CountryData { code: "in", colos: &[("BOM", 35), ("DEL", 30), ("MAA", 20), ("BLR", 15)], asns: &[(55836, 45), (45609, 30), (9829, 10), (24560, 15)] },
    CountryData { code: "jp", colos: &[("NRT", 70), ("KIX", 30)], asns: &[(2516, 35), (4713, 40), (17676, 25)] },
    CountryData { code: "kr", colos: &[("ICN", 100)], asns: &[(4766, 45), (9318, 30), (3786, 25)] },
    CountryData { code: "sg", colos: &[("SIN", 100)], asns: &[(9506, 65), (4773, 35)] },
    CountryData { code: "au", colos: &[("SYD", 45), ("MEL", 35), ("BNE", 12), ("PER", 8)], asns: &[(1221, 45), (4804, 30), (7545, 25)] },
    CountryData { code: "id", colos: &[("CGK", 100)], asns: &[(7713, 50), (23693, 50)] },
    CountryData { code: "vn", colos: &[("SGN", 55), ("HAN", 45)], asns: &[(7552, 45), (45899, 35), (18403, 20)] },
    CountryData { code: "th", colos: &[("BKK", 100)], asns: &[(7470, 55), (45758, 45)] },
    CountryData { code: "ph", colos: &[("MNL", 100)], asns: &[(9299, 55), (132199, 45)] },
    CountryData { code: "cn", colos: &[("HKG", 60), ("LAX", 40)], asns: &[(4134, 50), (4837, 30), (9808, 20)] },
    CountryData { code: "hk", colos: &[("HKG", 100)], asns: &[(4760, 60), (9269, 40)] },
    CountryData { code: "tw", colos: &[("TPE", 100)], asns: &[(3462, 100)] },
    CountryData { code: "eg", colos: &[("CAI", 100)], asns: &[(8452, 100)] },
    CountryData { code: "ng", colos: &[("LOS", 100)], asns: &[(29465, 100)] },
    CountryData { code: "pk", colos: &[("KHI", 100)], asns: &[(17557, 100)] },
    CountryData { code: "bd", colos: &[("DAC", 100)], asns: &[(24389, 100)] },
    CountryData { code: "za", colos: &[("JNB", 70), ("CPT", 30)], asns: &[(37457, 50), (36994, 50)] },
];

/// Countries botnets are commonly rented or grown in; a flood's sources are drawn from the ones
/// a site never sees normal traffic from.
pub(crate) const BOTNET_COUNTRIES: &[&str] =
    &["vn", "id", "br", "in", "ru", "cn", "ua", "tr", "th", "eg", "pk", "bd", "ph", "ng", "ar", "co", "za", "kr"];

/// Hosting networks: (ASN, country where its machines geolocate).
pub(crate) const HOSTING_ASNS: &[(u32, &str)] = &[
    (14061, "us"),  // DigitalOcean
    (16276, "fr"),  // OVH
    (24940, "de"),  // Hetzner
    (20473, "us"),  // Vultr (Choopa)
    (63949, "us"),  // Akamai Connected Cloud (Linode)
    (45102, "cn"),  // Alibaba Cloud
    (9009, "gb"),   // M247
    (16509, "us"),  // Amazon
    (396982, "us"), // Google Cloud
];

/// Crawlers: (ASN, country, index into [`USER_AGENTS`]).
pub(crate) const CRAWLERS: &[(u32, &str, usize)] = &[(15169, "us", UA_GOOGLEBOT), (8075, "us", UA_BINGBOT)];

/// What kind of client a user agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UaKind {
    Browser,
    MobileApp,
    Crawler,
    Tool,
}

pub(crate) struct UserAgent {
    pub ua: &'static str,
    pub kind: UaKind,
    pub ja3: &'static str,
    pub ja4: &'static str,
    /// Speaks HTTP/3 sometimes.
    pub h3: bool,
    /// Speaks HTTP/2.
    pub h2: bool,
}

pub(crate) const UA_GOOGLEBOT: usize = 11;
pub(crate) const UA_BINGBOT: usize = 12;

pub(crate) const USER_AGENTS: &[UserAgent] = &[
    UserAgent { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36", kind: UaKind::Browser, ja3: "cd08e31494f9531f560d64c695473da9", ja4: "t13d1516h2_8daaf6152771_02713d6af862", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36", kind: UaKind::Browser, ja3: "b32309a26951912be7dba376398abc3b", ja4: "t13d1516h2_8daaf6152771_02713d6af862", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1", kind: UaKind::Browser, ja3: "773906b0efdefa24a7f2b8eb6985bf37", ja4: "t13d2014h2_a09f3c656075_14788d8d241b", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15", kind: UaKind::Browser, ja3: "773906b0efdefa24a7f2b8eb6985bf37", ja4: "t13d2014h2_a09f3c656075_14788d8d241b", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:143.0) Gecko/20100101 Firefox/143.0", kind: UaKind::Browser, ja3: "579ccef312d18482fc42e2b822ca2430", ja4: "t13d1715h2_5b57614c22b0_3d5424432f57", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.0.0", kind: UaKind::Browser, ja3: "e4d448cdfe06dc1243c1eb026c74ac9a", ja4: "t13d1516h2_8daaf6152771_02713d6af862", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Mobile Safari/537.36", kind: UaKind::Browser, ja3: "9b02ebd3a43b62d825e1ac605b621dc8", ja4: "t13d1516h2_8daaf6152771_02713d6af862", h3: true, h2: true },
    UserAgent { ua: "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36", kind: UaKind::Browser, ja3: "0ffee3ba8e615ad22535e7f771690a28", ja4: "t13d1516h2_8daaf6152771_e5627efa2ab1", h3: false, h2: true },
    UserAgent { ua: "Mozilla/5.0 (X11; Linux x86_64; rv:143.0) Gecko/20100101 Firefox/143.0", kind: UaKind::Browser, ja3: "579ccef312d18482fc42e2b822ca2430", ja4: "t13d1715h2_5b57614c22b0_3d5424432f57", h3: true, h2: true },
    UserAgent { ua: "okhttp/4.12.0", kind: UaKind::MobileApp, ja3: "f79b6bad2ad0641e1921aef10262856b", ja4: "t13d1312h2_f57a46bbacb6_ab7e3b40a677", h3: false, h2: true },
    UserAgent { ua: "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)", kind: UaKind::MobileApp, ja3: "d8c87b9bfde38897979e41242626c2f3", ja4: "t13d1312h2_f57a46bbacb6_ab7e3b40a677", h3: false, h2: true },
    UserAgent { ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", kind: UaKind::Crawler, ja3: "3fed133de60c35724739b913924b6c24", ja4: "t13d1414h2_9dc949149365_7c2a9bbed7c1", h3: false, h2: true },
    UserAgent { ua: "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", kind: UaKind::Crawler, ja3: "1be3ecebe5aa9d3654e6e703d81f6928", ja4: "t13d1311h2_e8f1e7e78f70_1f22a2ca17c4", h3: false, h2: true },
    UserAgent { ua: "curl/8.5.0", kind: UaKind::Tool, ja3: "456523fc94726331a4d5a2e1d40b2cd7", ja4: "t13d4907h2_0d8feac7bc37_7395dae3b2f3", h3: false, h2: true },
    UserAgent { ua: "python-requests/2.32.3", kind: UaKind::Tool, ja3: "8d9f7747675e24454cd9b7ed35c58707", ja4: "t13d1812h1_85036bcba153_375ca2c5e164", h3: false, h2: false },
    UserAgent { ua: "Go-http-client/2.0", kind: UaKind::Tool, ja3: "d9f7ebd4a2e51a7e2f3f9e1c0bbf2c1a", ja4: "t13d1312h2_f57a46bbacb6_e7c285222651", h3: false, h2: true },
];

/// (index into [`USER_AGENTS`], weight) of people browsing a website.
pub(crate) const WEB_UA_MIX: &[(usize, u32)] =
    &[(0, 300), (1, 90), (2, 210), (3, 60), (4, 60), (5, 70), (6, 150), (7, 30), (8, 10), (13, 4), (14, 3), (15, 3)];
/// (index into [`USER_AGENTS`], weight) of an API's callers.
pub(crate) const API_UA_MIX: &[(usize, u32)] =
    &[(0, 80), (2, 60), (6, 40), (9, 250), (10, 150), (13, 40), (14, 60), (15, 80)];

/// User agents a flood tool sends (spoofed browsers or bare HTTP libraries), with fingerprints that
/// differ from the real browsers'.
pub(crate) const ATTACK_UAS: &[(&str, &str, &str)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.124 Safari/537.36",
        "e7d705a3286e19ea42f587b344ee6865",
        "t12d1209h1_d34a8e72043a_b39be8c56a14",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36",
        "6734f37431670b3ab4292b8f60f29984",
        "t12d1209h1_d34a8e72043a_b39be8c56a14",
    ),
    ("Go-http-client/1.1", "51c64c77e60f3980eea90869b68c58a8", "t13d1312h1_f57a46bbacb6_e7c285222651"),
    ("python-requests/2.31.0", "8d9f7747675e24454cd9b7ed35c58707", "t13d1812h1_85036bcba153_375ca2c5e164"),
    (
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
        "a0e9f5d64349fb13191bc781f81f42e1",
        "t12d0907h1_76e208dd3e22_2dae41c691ec",
    ),
];

/// User agents of credential-stuffing tools (HTTP libraries and headless browsers driven by a
/// script), with their fingerprints; none of them is in a site's normal mix.
pub(crate) const AUTOMATION_UAS: &[(&str, &str, &str)] = &[
    ("python-requests/2.28.2", "b5f5b0a2c3e6f1d8a9c4e7f2a1b3d5c6", "t13d1812h1_85036bcba153_375ca2c5e164"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/119.0.6045.105 Safari/537.36",
        "2c9a5b0e8d6f4a1c3e7b9d2f5a8c1e4b",
        "t13d1516h2_8daaf6152771_9b887d9acb53",
    ),
    ("axios/1.6.8", "7a1e5c9b3d8f2e6a4c0b9d7e5f3a1c8b", "t13d1713h1_5b57614c22b0_3cbfd9057e0d"),
    ("Go-http-client/2.0 (OpenBullet2)", "4e8a2c6f0b3d9e7a5c1f8b2d6e0a4c9f", "t13d1312h2_f57a46bbacb6_d41ae481755e"),
];

/// The scraper's user agent (a crawler-like name no normal client uses) and fingerprints.
pub(crate) const SCRAPER_UA: (&str, &str, &str) = (
    "Mozilla/5.0 (compatible; DataHarvest/3.2; +http://example.net/bot)",
    "9c3f7a1e5b8d2c6f0a4e9b7d3c1f5a8e",
    "t13d1812h1_85036bcba153_b0e0b3ec6aa2",
);

/// Content class of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Html,
    Api,
    Js,
    Css,
    Image,
    Font,
    Icon,
    Media,
    Text,
}

impl Class {
    pub(crate) fn is_static(self) -> bool {
        !matches!(self, Class::Html | Class::Api)
    }

    /// Response size range in bytes (lo, hi) of a 200.
    pub(crate) fn size_range(self) -> (u32, u32) {
        match self {
            Class::Html => (18_000, 160_000),
            Class::Api => (250, 16_000),
            Class::Js => (30_000, 650_000),
            Class::Css => (8_000, 120_000),
            Class::Image => (4_000, 420_000),
            Class::Font => (20_000, 120_000),
            Class::Icon => (900, 15_000),
            Class::Media => (300_000, 2_400_000),
            Class::Text => (120, 60_000),
        }
    }
}

/// Query string attached to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    None,
    /// `?q=<word>` always.
    Search,
    /// `?page=<n>` sometimes.
    Page,
    /// `?utm_source=...` sometimes (links from social media and newsletters).
    Utm,
    /// `?seq=<n>` always (media segments).
    Seq,
}

/// Which of the site's hosts serves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostSel {
    Primary,
    Api,
}

pub(crate) struct PathTemplate {
    /// `{h}` = the site's build hash, `{id}` = a numeric id below `id_max`.
    pub pattern: &'static str,
    pub id_max: u32,
    pub class: Class,
    pub weight: u32,
    pub query: Query,
    pub methods: &'static [(&'static str, u32)],
    pub host: HostSel,
}

const GET: &[(&str, u32)] = &[("GET", 998), ("HEAD", 2)];
const FORM: &[(&str, u32)] = &[("GET", 65), ("POST", 35)];
const POST: &[(&str, u32)] = &[("POST", 97), ("OPTIONS", 3)];
const REST: &[(&str, u32)] = &[("GET", 78), ("PUT", 10), ("DELETE", 4), ("OPTIONS", 8)];
const RW: &[(&str, u32)] = &[("GET", 55), ("POST", 40), ("OPTIONS", 5)];

const fn p(pattern: &'static str, id_max: u32, class: Class, weight: u32, query: Query, methods: &'static [(&'static str, u32)]) -> PathTemplate {
    PathTemplate { pattern, id_max, class, weight, query, methods, host: HostSel::Primary }
}
const fn api(pattern: &'static str, id_max: u32, weight: u32, query: Query, methods: &'static [(&'static str, u32)]) -> PathTemplate {
    PathTemplate { pattern, id_max, class: Class::Api, weight, query, methods, host: HostSel::Api }
}

/// What a site is; decides its URL layout and client mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteKind {
    Shop,
    News,
    Blog,
    Api,
    Media,
    SaaS,
}

impl SiteKind {
    pub(crate) const ALL: [(SiteKind, u32); 6] = [
        (SiteKind::Shop, 24),
        (SiteKind::News, 18),
        (SiteKind::Blog, 22),
        (SiteKind::Api, 12),
        (SiteKind::Media, 8),
        (SiteKind::SaaS, 16),
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            SiteKind::Shop => "shop",
            SiteKind::News => "news",
            SiteKind::Blog => "blog",
            SiteKind::Api => "api",
            SiteKind::Media => "media",
            SiteKind::SaaS => "saas",
        }
    }

    pub(crate) fn has_api_host(self) -> bool {
        matches!(self, SiteKind::Api)
    }

    pub(crate) fn ua_mix(self) -> &'static [(usize, u32)] {
        if self == SiteKind::Api { API_UA_MIX } else { WEB_UA_MIX }
    }

    pub(crate) fn paths(self) -> &'static [PathTemplate] {
        match self {
            SiteKind::Shop => SHOP_PATHS,
            SiteKind::News => NEWS_PATHS,
            SiteKind::Blog => BLOG_PATHS,
            SiteKind::Api => API_PATHS,
            SiteKind::Media => MEDIA_PATHS,
            SiteKind::SaaS => SAAS_PATHS,
        }
    }
}

use Class::{Api, Css, Font, Html, Icon, Image, Js, Media, Text};
use Query as Q;

const SHOP_PATHS: &[PathTemplate] = &[
        p("/", 0, Html, 120, Q::Utm, GET),
        p("/products/{id}", 5000, Html, 260, Q::Utm, GET),
        p("/category/{id}", 60, Html, 80, Q::Page, GET),
        p("/search", 0, Html, 40, Q::Search, GET),
        p("/cart", 0, Html, 25, Q::None, FORM),
        p("/checkout", 0, Html, 10, Q::None, FORM),
        p("/account/login", 0, Html, 12, Q::None, FORM),
        p("/api/cart", 0, Api, 40, Q::None, RW),
        p("/api/recommendations/{id}", 5000, Api, 30, Q::None, GET),
        p("/static/js/app.{h}.js", 0, Js, 150, Q::None, GET),
        p("/static/js/vendor.{h}.js", 0, Js, 140, Q::None, GET),
        p("/static/css/main.{h}.css", 0, Css, 150, Q::None, GET),
        p("/images/products/{id}.webp", 5000, Image, 420, Q::None, GET),
        p("/fonts/inter-var.woff2", 0, Font, 60, Q::None, GET),
        p("/favicon.ico", 0, Icon, 30, Q::None, GET),
        p("/robots.txt", 0, Text, 3, Q::None, GET),
];

const NEWS_PATHS: &[PathTemplate] = &[
        p("/", 0, Html, 150, Q::None, GET),
        p("/news/{id}", 20000, Html, 300, Q::Utm, GET),
        p("/section/{id}", 30, Html, 60, Q::Page, GET),
        p("/live", 0, Html, 20, Q::None, GET),
        p("/search", 0, Html, 10, Q::Search, GET),
        p("/api/comments/{id}", 20000, Api, 50, Q::None, RW),
        p("/assets/js/bundle.{h}.js", 0, Js, 160, Q::None, GET),
        p("/assets/css/site.{h}.css", 0, Css, 150, Q::None, GET),
        p("/img/{id}.jpg", 40000, Image, 450, Q::None, GET),
        p("/fonts/serif-{h}.woff2", 0, Font, 60, Q::None, GET),
        p("/feed.xml", 0, Text, 15, Q::None, GET),
        p("/favicon.ico", 0, Icon, 25, Q::None, GET),
];

const BLOG_PATHS: &[PathTemplate] = &[
        p("/", 0, Html, 100, Q::Utm, GET),
        p("/posts/{id}", 800, Html, 260, Q::Utm, GET),
        p("/tag/{id}", 50, Html, 40, Q::Page, GET),
        p("/feed/", 0, Text, 30, Q::None, GET),
        p("/wp-login.php", 0, Html, 8, Q::None, FORM),
        p("/wp-admin/admin-ajax.php", 0, Api, 20, Q::None, RW),
        p("/wp-content/themes/theme-{h}/style.css", 0, Css, 120, Q::None, GET),
        p("/wp-includes/js/jquery/jquery.min.js", 0, Js, 120, Q::None, GET),
        p("/wp-content/uploads/2026/{id}.jpg", 3000, Image, 300, Q::None, GET),
        p("/favicon.ico", 0, Icon, 25, Q::None, GET),
        p("/robots.txt", 0, Text, 4, Q::None, GET),
];

const API_PATHS: &[PathTemplate] = &[
        api("/v1/users/{id}", 100_000, 200, Q::None, REST),
        api("/v1/orders", 0, 120, Q::None, RW),
        api("/v1/search", 0, 100, Q::Search, GET),
        api("/v2/events", 0, 180, Q::None, POST),
        api("/v1/items/{id}", 50_000, 160, Q::None, REST),
        api("/oauth/token", 0, 40, Q::None, POST),
        api("/health", 0, 30, Q::None, GET),
        p("/docs", 0, Html, 20, Q::None, GET),
        p("/docs/assets/app.{h}.js", 0, Js, 30, Q::None, GET),
        p("/docs/assets/style.{h}.css", 0, Css, 25, Q::None, GET),
];

const MEDIA_PATHS: &[PathTemplate] = &[
        p("/", 0, Html, 60, Q::None, GET),
        p("/watch/{id}", 10_000, Html, 120, Q::Utm, GET),
        p("/hls/v{id}/720p/segment.ts", 10_000, Media, 500, Q::Seq, GET),
        p("/hls/v{id}/720p/index.m3u8", 10_000, Text, 60, Q::None, GET),
        p("/thumbs/{id}.jpg", 10_000, Image, 200, Q::None, GET),
        p("/api/recommendations", 0, Api, 40, Q::None, GET),
        p("/player/player.{h}.js", 0, Js, 60, Q::None, GET),
        p("/player/player.{h}.css", 0, Css, 40, Q::None, GET),
];

const SAAS_PATHS: &[PathTemplate] = &[
        p("/app", 0, Html, 80, Q::None, GET),
        p("/app/dashboard", 0, Html, 90, Q::None, GET),
        p("/app/projects/{id}", 2000, Html, 120, Q::None, GET),
        p("/api/graphql", 0, Api, 300, Q::None, POST),
        p("/api/session", 0, Api, 60, Q::None, REST),
        p("/login", 0, Html, 20, Q::None, FORM),
        p("/assets/index.{h}.js", 0, Js, 140, Q::None, GET),
        p("/assets/index.{h}.css", 0, Css, 120, Q::None, GET),
        p("/assets/logo.svg", 0, Image, 60, Q::None, GET),
        p("/favicon.ico", 0, Icon, 20, Q::None, GET),
];

/// Search words (`?q=`), also used for UTM sources.
pub(crate) const SEARCH_WORDS: &[&str] = &[
    "shoes", "jacket", "laptop", "phone", "election", "weather", "recipe", "coffee", "headphones",
    "camera", "garden", "football", "tickets", "sale", "gift", "watch", "running", "vegan", "travel",
    "hotel", "keyboard", "monitor", "desk", "lamp", "kids", "books", "music", "podcast", "update",
    "login", "pricing", "support",
];

pub(crate) const UTM_SOURCES: &[&str] = &[
    "utm_source=newsletter&utm_medium=email",
    "utm_source=twitter&utm_medium=social",
    "utm_source=facebook&utm_medium=social",
    "utm_source=google&utm_medium=cpc",
    "utm_source=reddit&utm_medium=social",
    "fbclid=IwAR2x",
    "gclid=Cj0KCQiA",
];

pub(crate) const NAME_ADJECTIVES: &[&str] = &[
    "blue", "red", "green", "silver", "golden", "quiet", "rapid", "bright", "north", "south",
    "east", "west", "urban", "wild", "little", "big", "happy", "clever", "bold", "fresh", "prime",
    "true", "open", "smart", "daily", "global", "local", "pure", "royal", "sunny", "cosmic", "iron",
    "crystal", "velvet", "lucky", "modern", "classic", "swift", "hidden", "first",
];

pub(crate) const NAME_NOUNS: &[&str] = &[
    "harbor", "river", "market", "studio", "garden", "pixel", "forge", "cloud", "labs", "works",
    "press", "times", "post", "store", "shop", "outlet", "media", "tube", "stream", "cart",
    "kitchen", "travel", "sports", "health", "games", "music", "books", "finance", "wallet",
    "bank", "energy", "motors", "fashion", "home", "pets", "tech", "data", "api", "hub", "academy",
];

/// One ASN as the generator uses it.
pub(crate) struct Asn {
    pub number: u32,
    /// Index into [`COUNTRIES`]-derived country table of [`World`].
    pub country: u16,
    pub kind: NetKind,
    /// IPv4 prefixes: (network address, prefix length 16 or 24).
    pub v4: Vec<(u32, u8)>,
    /// IPv6 /32: the top 32 bits of the address.
    pub v6_top: u32,
}

/// A country as the generator uses it (indices into the world's tables).
pub(crate) struct Country {
    pub code: &'static str,
    /// (colo index, cumulative weight out of u32::MAX).
    pub colos: Vec<(u16, u32)>,
    /// (ASN index, cumulative weight out of u32::MAX) of access networks.
    pub asns: Vec<(u16, u32)>,
}

/// The built world: countries, colos, ASNs with prefixes.
pub(crate) struct World {
    pub countries: Vec<Country>,
    pub colos: Vec<&'static str>,
    pub asns: Vec<Asn>,
    pub hosting: Vec<u16>,
    /// (ASN index, UA index) of crawlers.
    pub crawlers: Vec<(u16, usize)>,
}

/// Seed of the prefix allocation: fixed so an IP maps to the same ASN in every run.
const PREFIX_SEED: u64 = 0x6564_6765_6c65_6e73; // "edgelens"

/// Turns (item, weight) pairs into cumulative u32 thresholds for [`pick_cum`].
pub(crate) fn cumulative<T: Copy>(items: &[(T, f64)]) -> Vec<(T, u32)> {
    let total: f64 = items.iter().map(|&(_, w)| w).sum();
    let mut acc = 0.0;
    let mut out = Vec::with_capacity(items.len());
    for (i, &(t, w)) in items.iter().enumerate() {
        acc += w;
        let th = if i + 1 == items.len() { u32::MAX } else { ((acc / total) * u32::MAX as f64) as u32 };
        out.push((t, th));
    }
    out
}

/// Pick from a cumulative table with a uniform u32.
#[inline]
pub(crate) fn pick_cum<T: Copy>(table: &[(T, u32)], r: u32) -> T {
    for &(t, th) in table {
        if r <= th {
            return t;
        }
    }
    table[table.len() - 1].0
}

fn is_reserved_16(a: u32, b: u32) -> bool {
    match a {
        0 | 10 | 127 => true,
        100 => (64..128).contains(&b),
        169 => b == 254,
        172 => (16..32).contains(&b),
        192 => b == 0 || b == 88 || b == 168,
        198 => b == 18 || b == 19 || b == 51,
        203 => b == 0,
        _ => a >= 224 || a == 0,
    }
}

/// Hands out disjoint public prefixes: whole /16s, and /24s carved from /16s set aside for them.
struct PrefixAllocator {
    sixteens: std::vec::IntoIter<u32>,
    split_base: u32,
    split_next: u32,
    v6_next: u32,
}

impl PrefixAllocator {
    fn new(rng: &mut Pcg64Mcg) -> Self {
        let mut sixteens: Vec<u32> = (1u32..224)
            .flat_map(|a| (0u32..256).map(move |b| (a, b)))
            .filter(|&(a, b)| !is_reserved_16(a, b))
            .map(|(a, b)| (a << 24) | (b << 16))
            .collect();
        for i in (1..sixteens.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            sixteens.swap(i, j);
        }
        let v6_next = 0x2a00_0000u32 + (rng.next_u64() % 0x1000) as u32 * 0x10;
        PrefixAllocator { sixteens: sixteens.into_iter(), split_base: 0, split_next: 256, v6_next }
    }

    fn take16(&mut self) -> u32 {
        // ~54k public /16s against a few hundred taken: never runs out.
        self.sixteens.next().expect("enough public /16s")
    }

    fn take24(&mut self) -> u32 {
        if self.split_next == 256 {
            self.split_base = self.take16();
            self.split_next = 0;
        }
        let net = self.split_base | (self.split_next << 8);
        self.split_next += 1;
        net
    }

    fn asn(&mut self, number: u32, country: u16, kind: NetKind, big: bool, rng: &mut Pcg64Mcg) -> Asn {
        let mut v4 = Vec::new();
        let (n16, n24) = if big { (2 + rng.next_u64() % 3, rng.next_u64() % 3) } else { (1, 2 + rng.next_u64() % 3) };
        for _ in 0..n16 {
            v4.push((self.take16(), 16u8));
        }
        for _ in 0..n24 {
            v4.push((self.take24(), 24u8));
        }
        let v6_top = self.v6_next;
        self.v6_next += 0x10 + (rng.next_u64() % 8) as u32;
        Asn { number, country, kind, v4, v6_top }
    }
}

impl World {
    pub(crate) fn build() -> World {
        let mut rng = Pcg64Mcg::seed_from_u64(PREFIX_SEED);
        let mut alloc = PrefixAllocator::new(&mut rng);
        let mut colos: Vec<&'static str> = COUNTRIES.iter().flat_map(|c| c.colos.iter().map(|&(n, _)| n)).collect();
        colos.sort_unstable();
        colos.dedup();
        let colo_idx = |n: &str| colos.iter().position(|&c| c == n).expect("colo listed") as u16;
        let country_idx = |code: &str| COUNTRIES.iter().position(|c| c.code == code).expect("country listed") as u16;

        let mut asns: Vec<Asn> = Vec::new();
        let mut countries = Vec::with_capacity(COUNTRIES.len());
        for (ci, c) in COUNTRIES.iter().enumerate() {
            let colo_w: Vec<(u16, f64)> = c.colos.iter().map(|&(n, w)| (colo_idx(n), w as f64)).collect();
            let mut asn_w = Vec::new();
            for &(number, w) in c.asns {
                asns.push(alloc.asn(number, ci as u16, NetKind::Access, w >= 25, &mut rng));
                asn_w.push(((asns.len() - 1) as u16, w as f64));
            }
            countries.push(Country { code: c.code, colos: cumulative(&colo_w), asns: cumulative(&asn_w) });
        }
        let mut hosting = Vec::new();
        for &(number, code) in HOSTING_ASNS {
            asns.push(alloc.asn(number, country_idx(code), NetKind::Hosting, true, &mut rng));
            hosting.push((asns.len() - 1) as u16);
        }
        let mut crawlers = Vec::new();
        for &(number, code, ua) in CRAWLERS {
            asns.push(alloc.asn(number, country_idx(code), NetKind::Crawler, false, &mut rng));
            crawlers.push(((asns.len() - 1) as u16, ua));
        }
        World { countries, colos, asns, hosting, crawlers }
    }

    pub(crate) fn country_index(&self, code: &str) -> Option<u16> {
        self.countries.iter().position(|c| c.code == code).map(|i| i as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_safe(s: &str) -> bool {
        s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
    }

    #[test]
    fn strings_are_json_safe() {
        for ua in USER_AGENTS {
            assert!(json_safe(ua.ua) && json_safe(ua.ja3) && json_safe(ua.ja4));
        }
        for (ua, ja3, ja4) in ATTACK_UAS.iter().chain(AUTOMATION_UAS).chain([&SCRAPER_UA]) {
            assert!(json_safe(ua) && json_safe(ja3) && json_safe(ja4));
        }
        for (k, _) in SiteKind::ALL {
            for t in k.paths() {
                assert!(json_safe(t.pattern) && t.pattern.starts_with('/'));
            }
        }
        for w in SEARCH_WORDS.iter().chain(UTM_SOURCES).chain(NAME_ADJECTIVES).chain(NAME_NOUNS) {
            assert!(json_safe(w));
        }
        assert_eq!(USER_AGENTS[UA_GOOGLEBOT].kind, UaKind::Crawler);
        assert_eq!(USER_AGENTS[UA_BINGBOT].kind, UaKind::Crawler);
    }

    #[test]
    fn prefixes_are_disjoint_and_public() {
        let w = World::build();
        let mut nets: Vec<(u32, u32)> = Vec::new();
        for a in &w.asns {
            assert!(!a.v4.is_empty());
            for &(net, len) in &a.v4 {
                let size = 1u32 << (32 - len);
                assert_eq!(net % size, 0);
                assert!(!is_reserved_16(net >> 24, (net >> 16) & 0xff));
                nets.push((net, net + (size - 1)));
            }
        }
        nets.sort_unstable();
        for pair in nets.windows(2) {
            assert!(pair[0].1 < pair[1].0, "overlap {pair:?}");
        }
        let mut numbers: Vec<u32> = w.asns.iter().map(|a| a.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), w.asns.len(), "an ASN listed twice");
    }
}
