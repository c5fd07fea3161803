//! Where each page lives: URLs for the server, file names for a static bundle.
//!
//! Every link a page shows is made here, so the server and `--bundle` render the same
//! templates: on the server every page has a stable URL whose query string holds its filters
//! ([`CaseFilter::to_query`] and [`CaseFilter::from_query`] round-trip); in a bundle the pages
//! are files side by side in one folder, linked relatively, and a link to a page the bundle
//! does not hold (a filtered list, another run, a comparison) is `None`: the template shows
//! plain text instead of a dead link.

use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::store::CaseKey;
use std::collections::HashSet;
use std::sync::Arc;

/// The filters of the cases page, as they appear in its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// `model=`
    pub model: Option<String>,
    /// `tier=`
    pub tier: Option<Tier>,
    /// `class=`
    pub class: Option<String>,
    /// `probe=`
    pub probe: Option<String>,
    /// `axis=AXIS:VALUE`, repeatable.
    pub axes: Vec<(String, String)>,
    /// `status=`
    pub status: Option<CaseStatus>,
    /// `check=` (a check type that failed)
    pub check: Option<String>,
    /// `q=` (text in the answer)
    pub text: Option<String>,
    /// `after=VARIANT~MODEL~SAMPLE` (the page's start)
    pub after: Option<CaseKey>,
}

/// A query parameter the page could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    /// The parameter.
    pub name: String,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for BadParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query parameter `{}`: {}", self.name, self.message)
    }
}

/// The pairs of a query string (`None`: no query), percent-decoded, empty values dropped.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The first value of `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bad(name: &str, message: String) -> BadParam {
    BadParam {
        name: name.to_string(),
        message,
    }
}

/// `VARIANT~MODEL~SAMPLE` (model names may hold `~`: the variant is first and the sample last).
pub fn key_text(k: &CaseKey) -> String {
    format!("{}~{}~{}", k.variant_id, k.model, k.sample)
}

/// Parses [`key_text`].
pub fn parse_key(s: &str) -> Option<CaseKey> {
    let (variant_id, rest) = s.split_once('~')?;
    let (model, sample) = rest.rsplit_once('~')?;
    Some(CaseKey {
        variant_id: variant_id.to_string(),
        model: model.to_string(),
        sample: sample.parse().ok()?,
    })
}

impl CaseFilter {
    /// Reads the filters from query pairs; unknown parameters are ignored, bad values refused.
    pub fn from_query(pairs: &[(String, String)]) -> Result<CaseFilter, BadParam> {
        let mut f = CaseFilter::default();
        for (k, v) in pairs {
            match k.as_str() {
                "model" => f.model = Some(v.clone()),
                "class" => f.class = Some(v.clone()),
                "probe" => f.probe = Some(v.clone()),
                "check" => f.check = Some(v.clone()),
                "q" => f.text = Some(v.clone()),
                "tier" => {
                    f.tier = Some(Tier::parse(v).ok_or_else(|| {
                        bad(
                            "tier",
                            format!("`{v}` is not easy, medium, hard or frontier"),
                        )
                    })?)
                }
                "status" => {
                    f.status = Some(CaseStatus::parse(v).ok_or_else(|| {
                        bad(
                            "status",
                            format!("`{v}` is not pass, fail, error or ungraded"),
                        )
                    })?)
                }
                "axis" => {
                    let (a, val) = v
                        .split_once(':')
                        .or_else(|| v.split_once('='))
                        .ok_or_else(|| bad("axis", format!("`{v}` is not AXIS:VALUE")))?;
                    f.axes.push((a.trim().to_string(), val.trim().to_string()));
                }
                "after" => {
                    f.after = Some(parse_key(v).ok_or_else(|| {
                        bad("after", format!("`{v}` is not VARIANT~MODEL~SAMPLE"))
                    })?)
                }
                _ => {}
            }
        }
        Ok(f)
    }

    /// The query string (without `?`) that [`CaseFilter::from_query`] reads back as `self`;
    /// empty when no filter is set.
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        };
        put("model", self.model.as_deref());
        put("tier", self.tier.map(Tier::as_str));
        put("class", self.class.as_deref());
        put("probe", self.probe.as_deref());
        for (a, v) in &self.axes {
            put("axis", Some(&format!("{a}:{v}")));
        }
        put("status", self.status.map(CaseStatus::as_str));
        put("check", self.check.as_deref());
        put("q", self.text.as_deref());
        put("after", self.after.as_ref().map(key_text).as_deref());
        q.finish()
    }

    /// True when nothing narrows the list (pagination aside).
    pub fn is_unfiltered(&self) -> bool {
        CaseFilter {
            after: None,
            ..self.clone()
        } == CaseFilter::default()
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    const KEEP: &[u8] = b"-._~";
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A file-name-safe form of `s` for a bundle: ASCII letters, digits, `.`, `-` kept, every
/// other byte as `_XX` (so distinct names stay distinct).
pub fn slug(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            o.push(b as char);
        } else {
            o.push_str(&format!("_{b:02X}"));
        }
    }
    o
}

/// How links are made.
#[derive(Debug, Clone)]
pub enum Links {
    /// Absolute URLs on the local server.
    Server,
    /// Relative file names in a bundle of one run.
    Bundle {
        /// The run the bundle holds.
        run: String,
        /// The cases whose pages the bundle holds.
        cases: Arc<HashSet<(String, String, u32)>>,
        /// Whether the bundle holds the list of its cases (`cases.html`).
        case_list: bool,
    },
}

impl Links {
    /// True for a static bundle.
    pub fn is_bundle(&self) -> bool {
        matches!(self, Links::Bundle { .. })
    }

    /// A stylesheet or script.
    pub fn asset(&self, name: &str) -> String {
        match self {
            Links::Server => format!("/static/{name}"),
            Links::Bundle { .. } => name.to_string(),
        }
    }

    /// The runs page.
    pub fn runs(&self) -> Option<String> {
        Some(match self {
            Links::Server => "/".into(),
            Links::Bundle { .. } => "index.html".into(),
        })
    }

    /// The runs page with the trend of `model`.
    pub fn runs_for_model(&self, model: &str) -> Option<String> {
        match self {
            Links::Server => Some(format!("/?model={}", qv(model))),
            Links::Bundle { .. } => None,
        }
    }

    /// A run's page (with a baseline other than the default).
    pub fn run(&self, run: &str, baseline: Option<&str>) -> Option<String> {
        match self {
            Links::Server => Some(match baseline {
                Some(b) => format!("/run/{}?baseline={}", seg(run), qv(b)),
                None => format!("/run/{}", seg(run)),
            }),
            Links::Bundle { run: r, .. } => {
                (r == run && baseline.is_none()).then(|| "run.html".into())
            }
        }
    }

    /// A probe family for a model.
    pub fn family(&self, run: &str, probe: &str, model: &str) -> Option<String> {
        match self {
            Links::Server => Some(format!(
                "/run/{}/family/{}?model={}",
                seg(run),
                seg(probe),
                qv(model)
            )),
            Links::Bundle { run: r, .. } => {
                (r == run).then(|| format!("family-{}--{}.html", slug(probe), slug(model)))
            }
        }
    }

    /// The cases page of a run with filters.
    pub fn cases(&self, run: &str, f: &CaseFilter) -> Option<String> {
        match self {
            Links::Server => {
                let q = f.to_query();
                Some(if q.is_empty() {
                    format!("/run/{}/cases", seg(run))
                } else {
                    format!("/run/{}/cases?{q}", seg(run))
                })
            }
            Links::Bundle {
                run: r, case_list, ..
            } => (r == run && *case_list && f.is_unfiltered() && f.after.is_none())
                .then(|| "cases.html".into()),
        }
    }

    /// One case.
    pub fn case(&self, run: &str, model: &str, variant: &str, sample: u32) -> Option<String> {
        match self {
            Links::Server => Some(format!(
                "/run/{}/case/{}/{}/{sample}",
                seg(run),
                seg(model),
                seg(variant)
            )),
            Links::Bundle { run: r, cases, .. } => (r == run
                && cases.contains(&(model.to_string(), variant.to_string(), sample)))
            .then(|| bundle_case_file(model, variant, sample)),
        }
    }

    /// Two sides compared variant by variant (`changed`: only the rows whose status differs).
    pub fn compare(&self, sides: &Sides, changed: bool) -> Option<String> {
        match self {
            Links::Server => Some(format!(
                "/compare?{}{}",
                sides.query(),
                if changed { "&changed=1" } else { "" }
            )),
            Links::Bundle { .. } => None,
        }
    }

    /// The answers of two sides to one variant and sample, with their diff.
    pub fn diff(&self, sides: &Sides, variant: &str, sample: u32) -> Option<String> {
        match self {
            Links::Server => Some(format!(
                "/diff?{}&variant={}&sample={sample}",
                sides.query(),
                qv(variant)
            )),
            Links::Bundle { .. } => None,
        }
    }
}

/// The file of a case page in a bundle.
pub fn bundle_case_file(model: &str, variant: &str, sample: u32) -> String {
    format!("case-{}--{}-{sample}.html", slug(model), slug(variant))
}

/// Two sides of a comparison: a model in a run each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sides {
    /// Run of side A.
    pub run_a: String,
    /// Model of side A.
    pub model_a: String,
    /// Run of side B.
    pub run_b: String,
    /// Model of side B.
    pub model_b: String,
}

impl Sides {
    /// `a=RUN&am=MODEL&b=RUN&bm=MODEL`.
    pub fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("a", &self.run_a)
            .append_pair("am", &self.model_a)
            .append_pair("b", &self.run_b)
            .append_pair("bm", &self.model_b)
            .finish()
    }

    /// Reads [`Sides::query`]; a missing `b` is the run of `a`.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Sides, BadParam> {
        let need = |n: &str| {
            param(pairs, n)
                .map(str::to_string)
                .ok_or_else(|| bad(n, "missing".into()))
        };
        let run_a = need("a")?;
        Ok(Sides {
            run_b: param(pairs, "b")
                .map(str::to_string)
                .unwrap_or_else(|| run_a.clone()),
            model_a: need("am")?,
            model_b: need("bm")?,
            run_a,
        })
    }
}

/// One query value, percent-encoded.
fn qv(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_through_the_query_string() {
        let f = CaseFilter {
            model: Some("gpt 4.1&x".into()),
            tier: Some(Tier::Hard),
            class: Some("multi-hop reasoning".into()),
            probe: Some("p/1".into()),
            axes: vec![
                ("persona".into(), "terse-expert".into()),
                ("format".into(), "a:b".into()),
            ],
            status: Some(CaseStatus::Fail),
            check: Some("contains".into()),
            text: Some("<script>".into()),
            after: Some(CaseKey {
                variant_id: "abc".into(),
                model: "m~1".into(),
                sample: 2,
            }),
        };
        let q = f.to_query();
        let back = CaseFilter::from_query(&query_pairs(Some(&q))).unwrap();
        assert_eq!(back, f);
        assert_eq!(CaseFilter::default().to_query(), "");
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        let e = CaseFilter::from_query(&query_pairs(Some("tier=impossible"))).unwrap_err();
        assert_eq!(e.name, "tier");
        let e = CaseFilter::from_query(&query_pairs(Some("axis=novalue"))).unwrap_err();
        assert_eq!(e.name, "axis");
        assert!(
            CaseFilter::from_query(&query_pairs(Some("tier=&unknown=1"))).unwrap()
                == CaseFilter::default()
        );
    }

    #[test]
    fn slugs_and_segments_are_safe_and_distinct() {
        assert_eq!(slug("a/b c"), "a_2Fb_20c");
        assert_ne!(slug("a_b"), slug("a/b"));
        assert_eq!(seg("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn a_bundle_links_only_to_pages_it_holds() {
        let l = Links::Bundle {
            run: "r1".into(),
            cases: Arc::new(
                [("m".to_string(), "v".to_string(), 0)]
                    .into_iter()
                    .collect(),
            ),
            case_list: true,
        };
        assert_eq!(l.run("r1", None).as_deref(), Some("run.html"));
        assert_eq!(l.run("r2", None), None);
        assert!(l.case("r1", "m", "v", 0).is_some());
        assert_eq!(l.case("r1", "m", "v", 1), None);
        let filtered = CaseFilter {
            status: Some(CaseStatus::Fail),
            ..Default::default()
        };
        assert_eq!(l.cases("r1", &filtered), None);
        assert_eq!(
            l.cases("r1", &CaseFilter::default()).as_deref(),
            Some("cases.html")
        );
    }
}
