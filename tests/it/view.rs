//! `cliffprobe view`: the real binary serving a store made by real sweeps against local
//! OpenAI-compatible endpoints, one of which answers with hostile text. Checked over plain
//! HTTP (status, content type, escaping, 404s, no write methods, every link resolving), as a
//! static bundle (every relative link resolving to a file), and in a real headless browser
//! (Debian's `chromium`): pages render after their script ran, filters round-trip through the
//! URL, and the hostile answer is shown as text, never run.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, openai_completion};
use project::{Project, model};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORDER_STATUS: &str = "order-status-table.yaml";

/// What the hostile model answers: markup that would run if it were not escaped, a closing
/// tag that would end a text area, and a terminal escape.
const HOSTILE: &str = "<script>window.__pwned=1</script></textarea><img src=x onerror=\"window.__pwned=2\">\u{1b}[31mYour order has shipped.\u{1b}[0m";

/// Two models on two local endpoints (`good` answers plainly, `evil` with [`HOSTILE`]), the
/// order-status probe, and two sweeps over its format axis (two runs).
struct Fixture {
    _good: TestServer,
    _evil: TestServer,
    p: Project,
    runs: Vec<String>,
}

fn fixture() -> Fixture {
    let good = TestServer::start(|_, _| {
        Reply::json(200, openai_completion("good", "The order is delayed."))
    });
    let evil = TestServer::start(|_, _| Reply::json(200, openai_completion("evil", HOSTILE)));
    let models = format!(
        "{}{}",
        model(
            "good",
            "openai",
            &format!("{}/v1", good.url()),
            "timeout = 5"
        ),
        model(
            "evil",
            "openai",
            &format!("{}/v1", evil.url()),
            "timeout = 5"
        )
    );
    let p = Project::new(&models);
    p.templatize(ORDER_STATUS);
    let env = [("TEST_KEY", "k")];
    let args = ["--strategy", "one-at-a-time", "--axes", "format"];
    p.sweep(&args, &env).success();
    p.sweep(&args, &env).success();
    let runs = p
        .store()
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    Fixture {
        _good: good,
        _evil: evil,
        p,
        runs,
    }
}

/// A running `cliffprobe view --port 0`, killed when dropped.
struct Viewer {
    child: Child,
    base: String,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_viewer(p: &Project, extra: &[&str]) -> Viewer {
    let mut child = p
        .std_cmd()
        .args(["view", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cliffprobe view");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the viewer prints its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "loopback by default: {url}"
    );
    Viewer { child, base: url }
}

/// One HTTP/1.1 response.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` against `base` (`http://host:port`), read to the end (`Connection: close`).
fn request(base: &str, method: &str, path: &str) -> Got {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect to the viewer");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Got {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(base: &str, path: &str) -> Got {
    request(base, "GET", path)
}

/// The value of every `href="…"` in `html`, entities decoded.
fn hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let end = rest.find('"').unwrap();
        out.push(decode_entities(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

fn decode_entities(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Finds the first link on `html` whose path contains `needle`.
fn link_with(html: &str, needle: &str) -> String {
    hrefs(html)
        .into_iter()
        .find(|h| h.contains(needle))
        .unwrap_or_else(|| panic!("no link with {needle:?}"))
}

#[test]
fn every_page_answers_escapes_stored_text_and_links_resolve() {
    let f = fixture();
    let v = start_viewer(&f.p, &[]);
    let run = f.runs.last().unwrap().clone();

    // The runs page: both runs, the trend chart.
    let runs = get(&v.base, "/");
    assert_eq!(runs.status, 200);
    assert_eq!(
        runs.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        runs.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    for r in &f.runs {
        assert!(runs.body.contains(r.as_str()), "runs page lists {r}");
    }
    assert!(runs.body.contains("<svg"), "the trend chart");

    // The run page: tiers × models, the comparison good → evil with its flips.
    let page = get(&v.base, &format!("/run/{run}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Tiers × models"));
    assert!(page.body.contains("good → evil"), "the comparison");
    assert!(page.body.contains("still failing"));

    // Another baseline: the same model in the earlier run; an unknown baseline is a 400.
    let vs_run = get(&v.base, &format!("/run/{run}?baseline={}", f.runs[0]));
    assert_eq!(vs_run.status, 200, "{}", vs_run.body);
    assert!(
        vs_run.body.contains(&format!("evil@{}", f.runs[0])),
        "{}",
        vs_run.body
    );
    let nowhere = get(&v.base, &format!("/run/{run}/case/evil/x/not-a-sample"));
    assert_eq!(nowhere.status, 404);
    let text = decode_entities(&nowhere.body);
    assert!(
        text.contains("no page at /run/") && text.contains("/compare and /diff"),
        "a 404 says which path and which pages there are: {}",
        nowhere.body
    );
    let bad_baseline = get(&v.base, &format!("/run/{run}?baseline=nobody"));
    assert_eq!(bad_baseline.status, 400);
    assert!(
        bad_baseline.body.contains("query parameter `baseline`")
            && !bad_baseline.body.contains("command line"),
        "the page names its query parameter, not a CLI flag: {}",
        bad_baseline.body
    );
    // A filter naming a model, class or probe the run does not have is a 400 that says so,
    // not an empty list whose form silently drops the filter.
    for q in ["model=nobody", "probe=nothing", "class=no+such+class"] {
        let got = get(&v.base, &format!("/run/{run}/cases?{q}"));
        assert_eq!(got.status, 400, "{q}: {}", got.body);
        assert!(got.body.contains("is not a"), "{q}: {}", got.body);
    }
    assert_eq!(get(&v.base, "/?model=nobody").status, 400);
    assert_eq!(
        get(&v.base, &format!("/run/{run}/cases?model=evil")).status,
        200
    );
    // HEAD answers like GET, without a body.
    let head = request(&v.base, "HEAD", &format!("/run/{run}"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // The hostile case: escaped, terminal escape visible, never raw markup.
    let cases = get(&v.base, &format!("/run/{run}/cases?model=evil"));
    assert_eq!(cases.status, 200);
    let case_path = link_with(&cases.body, "/case/evil/");
    let case = get(&v.base, &case_path);
    assert_eq!(case.status, 200);
    for raw in [
        "<script>window.__pwned",
        "</textarea>",
        "<img src=x",
        "\u{1b}",
    ] {
        assert!(
            !case.body.contains(raw),
            "{raw:?} reached the page unescaped"
        );
        assert!(
            !cases.body.contains(raw),
            "{raw:?} reached the list unescaped"
        );
    }
    assert!(
        case.body
            .contains("&lt;script&gt;window.__pwned=1&lt;&#x2f;script&gt;")
    );
    assert!(case.body.contains("&lt;&#x2f;textarea&gt;"));
    assert!(case.body.contains("␛[31mYour order has shipped."));
    // The conversation as the model saw it, and the other model side by side.
    assert!(case.body.contains("Conversation, as the model saw it"));
    assert!(case.body.contains("class=\"msg system\""), "{}", case.body);
    assert!(case.body.contains("The same variant on the other models"));

    // Text search finds the hostile answers only.
    let found = get(&v.base, &format!("/run/{run}/cases?q=__pwned"));
    assert!(
        found.body.contains("/case/evil/") || found.body.contains("&#x2f;case&#x2f;evil&#x2f;")
    );
    assert!(!found.body.contains("&#x2f;case&#x2f;good&#x2f;"));

    // 404 for unknown ids, 400 for a bad filter, 405 for anything but GET/HEAD.
    for path in [
        "/run/no-such-run".to_string(),
        format!("/run/{run}/case/evil/0000000000000000/0"),
        format!("/run/{run}/case/nobody/x/0"),
        format!("/run/{run}/family/no-such-probe"),
        "/run/no-such-run/cases".to_string(),
        "/nothing/here".to_string(),
    ] {
        let g = get(&v.base, &path);
        assert_eq!(g.status, 404, "{path}");
        assert_eq!(g.header("content-type"), Some("text/html; charset=utf-8"));
    }
    assert_eq!(
        get(&v.base, &format!("/run/{run}/cases?tier=impossible")).status,
        400
    );
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let g = request(&v.base, method, &format!("/run/{run}"));
        assert_eq!(g.status, 405, "{method}");
        assert_eq!(g.header("allow"), Some("GET, HEAD"));
    }
    // A hostile path segment comes back escaped in the error page.
    let g = get(&v.base, "/run/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(g.status, 404);
    assert!(!g.body.contains("<script>alert"));

    // Crawl: every link of every page reached from the runs page resolves.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_string()]);
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 400 {
            continue;
        }
        let g = get(&v.base, &path);
        assert_eq!(g.status, 200, "{path} (status {}): {}", g.status, g.body);
        if path.starts_with("/static/") {
            continue;
        }
        for h in hrefs(&g.body) {
            if h.starts_with('/') && !h.contains("after=") {
                queue.push_back(h);
            } else if h.starts_with('?') {
                queue.push_back(format!("{}{h}", path.split('?').next().unwrap()));
            } else {
                assert!(!h.starts_with("http"), "no external link: {h}");
            }
        }
    }
    for kind in ["/family/", "/case/", "/cases", "/compare?", "/diff?"] {
        assert!(
            seen.iter().any(|p| p.contains(kind)),
            "the crawl reached a {kind} page"
        );
    }

    // The store is untouched by all of this.
    let before = std::fs::metadata(f.p.store_path())
        .unwrap()
        .modified()
        .unwrap();
    let _ = get(&v.base, &format!("/run/{}", f.runs[0]));
    let after = std::fs::metadata(f.p.store_path())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the viewer never writes the store");
}

#[test]
fn a_host_other_than_loopback_is_warned_about() {
    let f = fixture();
    let mut child =
        f.p.std_cmd()
            .args(["view", "--port", "0", "--host", "0.0.0.0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: listening on 0.0.0.0"), "{err}");
    assert!(line.contains("http://127.0.0.1:"), "{line}");
}

#[test]
fn a_missing_store_is_an_input_error() {
    let p = Project::new("");
    let out = p.run(&["view", "--port", "0"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no store at"), "{}", out.stderr);

    // A file that is not a store (not SQLite at all, or empty) is named and refused, not
    // reported as an old schema to upgrade.
    for (name, bytes) in [
        ("garbage.db", &b"not a database\n"[..]),
        ("empty.db", &b""[..]),
    ] {
        let file = p.root().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = p.run(
            &["view", "--port", "0", "--store", file.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not a cliffprobe store") && out.stderr.contains(name),
            "{name}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "{name} left as it was"
        );
    }
}

#[test]
fn a_bundle_holds_linked_static_pages_for_one_run() {
    let f = fixture();
    let config = f.p.root().join("cliffprobe.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[floors]\nhard = 0.5\n");
    std::fs::write(&config, toml).unwrap();
    let dir = f.p.root().join("bundle");
    let out =
        f.p.run(&["view", "--bundle", dir.to_str().unwrap()], &[])
            .success();
    assert!(out.stdout.contains("wrote"), "{}", out.stdout);
    // The index shows the run's gate (settled when its page was computed) and the trend up to
    // the run: the earlier run too, as text (the bundle does not hold its page).
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        index.contains("class=\"badge fail\"") || index.contains("class=\"badge pass\""),
        "the gate's verdict: {index}"
    );
    for r in &f.runs {
        assert!(
            index.contains(r.as_str()),
            "the trend lists run {r}: {index}"
        );
    }
    for file in [
        "index.html",
        "run.html",
        "cases.html",
        "view.css",
        "view.js",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let mut pages = 0;
    let mut case_pages = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "html") {
            pages += 1;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("case-") {
                case_pages += 1;
            }
            let html = std::fs::read_to_string(&path).unwrap();
            assert!(!html.contains("<script>window.__pwned"), "{name}");
            for h in hrefs(&html) {
                assert!(
                    !h.starts_with('/') && !h.starts_with("http"),
                    "{name}: {h} is not relative"
                );
                let file = h.split(['?', '#']).next().unwrap();
                assert!(
                    dir.join(file).is_file(),
                    "{name} links {h}, which the bundle lacks"
                );
            }
        }
    }
    assert!(case_pages > 0 && pages > case_pages + 2);
    // A second bundle into the same, now full, folder is refused and changes nothing.
    let again = f.p.run(&["view", "--bundle", dir.to_str().unwrap()], &[]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

// ---------------------------------------------------------------- the browser

/// Debian's chromium, if installed.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless chromium on `url` with `extra` flags and returns its stdout.
fn browse(browser: &Path, profile: &Path, extra: &[&str], url: &str) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let i = dom.find(&key)? + key.len();
    let end = dom[i..].find('"')?;
    Some(&dom[i..i + end])
}

/// The pairs of a query string, sorted (order does not matter to the pages).
fn pairs(q: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), decode_query(v))
        })
        .collect();
    v.sort();
    v
}

fn decode_query(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn pages_render_in_a_real_browser_and_hostile_output_stays_text() {
    let Some(browser) = chromium() else {
        if std::env::var("CLIFFPROBE_BROWSER_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("CLIFFPROBE_BROWSER_REQUIRED=1 but no chromium on PATH");
        }
        eprintln!("skipped: no chromium on PATH (set CLIFFPROBE_BROWSER_REQUIRED=1 to require it)");
        return;
    };
    let f = fixture();
    let v = start_viewer(&f.p, &[]);
    let run = f.runs.last().unwrap().clone();
    let profile = tempfile::tempdir().unwrap();
    let dump = |path: &str| {
        browse(
            &browser,
            profile.path(),
            &["--dump-dom"],
            &format!("{}{path}", v.base),
        )
    };

    // Every kind of page renders, and its script ran (it marks the page ready).
    let cases_html = get(&v.base, &format!("/run/{run}/cases?model=evil")).body;
    let case_path = link_with(&cases_html, "/case/evil/");
    let family = link_with(&get(&v.base, &format!("/run/{run}")).body, "/family/");
    let pages = [
        "/".to_string(),
        format!("/run/{run}"),
        family,
        format!("/run/{run}/cases"),
        case_path.clone(),
        format!("/compare?a={run}&am=good&b={run}&bm=evil&changed=1"),
    ];
    for p in &pages {
        let dom = dump(p);
        assert_eq!(attr(&dom, "data-ready"), Some("yes"), "{p}: {dom}");
        assert!(dom.contains("</main>"), "{p}");
    }

    // The hostile answer is text in the DOM: no script or image element came out of it, and
    // nothing set window.__pwned (the page would say "pwned").
    let dom = dump(&case_path);
    assert_eq!(attr(&dom, "data-ready"), Some("yes"));
    assert!(!dom.contains("<script>window.__pwned"), "{dom}");
    assert!(!dom.contains("<img src=\"x\""), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;/textarea&gt;"),
        "{dom}"
    );
    assert!(dom.contains("␛[31mYour order has shipped."));

    // Filters round-trip through the URL: loaded with a query, the page shows the filters
    // applied, and its filter form stands for exactly that query again.
    let query = "model=evil&tier=hard&status=fail&axis=format%3Axml&q=delayed";
    let dom = dump(&format!("/run/{run}/cases?{query}"));
    assert_eq!(
        attr(&dom, "data-query").map(decode_entities).as_deref(),
        Some(query)
    );
    let form_query = decode_entities(attr(&dom, "data-form-query").expect("the filter form"));
    assert_eq!(pairs(&form_query), pairs(query), "{form_query}");
    assert!(dom.contains("<option selected=\"\">evil</option>"), "{dom}");
    assert!(dom.contains("value=\"format:xml\""));

    // A screenshot of the run page.
    let shot = profile.path().join("run.png");
    browse(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
        &format!("{}/run/{run}", v.base),
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}

/// A run a sweep has only begun (no case stored yet) is a page that says so, not a 404: the
/// run exists. Meanwhile the sweep writes to the same store without a lock error.
#[test]
fn a_run_without_stored_cases_yet_has_a_page() {
    let slow = TestServer::start(|_, _| {
        Reply::Delay(
            Duration::from_millis(300),
            Box::new(Reply::json(200, openai_completion("slow", "Shipped."))),
        )
    });
    let p = Project::new(&model(
        "slow",
        "openai",
        &format!("{}/v1", slow.url()),
        "timeout = 5\nmax_concurrency = 1",
    ));
    p.templatize(ORDER_STATUS);
    // An earlier, finished run, so the store exists when the viewer starts.
    let env = [("TEST_KEY", "k")];
    p.sweep(&["--strategy", "one-at-a-time", "--axes", "format"], &env)
        .success();
    let v = start_viewer(&p, &[]);
    let first = p.store().runs().unwrap()[0].id.clone();
    let mut sweep = p
        .std_cmd()
        .args([
            "sweep",
            "-q",
            "--strategy",
            "one-at-a-time",
            "--axes",
            "format",
            "--no-cache",
        ])
        .env("TEST_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = loop {
        let runs = get(&v.base, "/").body;
        if let Some(id) = runs
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| w.starts_with("r-") && *w != first)
        {
            break id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the new run never appeared: {runs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let page = get(&v.base, &format!("/run/{running}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("No case of this run is in the store yet"),
        "{}",
        page.body
    );
    let _ = sweep.kill();
    let out = sweep.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("locked"), "{stderr}");
}
