//! The bug tracker through the real binary, sandbox on (seccomp kill mode): every tool and
//! filter, project isolation, refusals, two writers on one database, SIGKILL mid-stream,
//! schema migration and the import of the Python original's database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Sandbox, Server, TIMEOUT, server_bin, stdout_of_success, tool_text};

/// Projects `a` and `b` are allowed; `outside` exists but is not. With a shared directory, the
/// database lives there and its `projects` folder is allowed too.
fn policy(shared: Option<&Path>) -> String {
    match shared {
        None => "filesystem:\n  allowed_paths: [\"${HOME}/projects/**\"]\n\
                 tools:\n  rate_limits: {default: 1000000}\n"
            .to_owned(),
        Some(shared) => format!(
            "filesystem:\n  allowed_paths: [\"${{HOME}}/projects/**\", \"{0}/projects/**\"]\n\
             tools:\n  rate_limits: {{default: 1000000}}\n\
             plugins:\n  bugtracker:\n    database: \"{0}/bugs.db\"\n",
            shared.display()
        ),
    }
}

fn make_projects(home: &Path) {
    for dir in ["projects/a", "projects/b", "outside"] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
}

/// A project in the shared folder, allowed for every server on that folder's database.
fn shared_project(shared: &Path) -> String {
    let project = shared.join("projects/p");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::canonicalize(project)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A server with the tracker, and helpers that unwrap its answers.
struct Tracker {
    server: Server,
    next_id: u64,
    output_schemas: HashMap<String, jsonschema::Validator>,
}

impl Tracker {
    /// A server on its own database, or on the one in `shared` (see [`policy`]).
    fn start(shared: Option<&Path>) -> Self {
        let mut server = Server::start_with_setup(&server_bin(), &policy(shared), make_projects);
        server.initialize();
        let list = server.request(json!("list"), "tools/list", json!({}));
        let output_schemas = list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| {
                let schema = t.get("outputSchema")?;
                Some((
                    t["name"].as_str().unwrap().to_owned(),
                    jsonschema::validator_for(schema).unwrap(),
                ))
            })
            .collect();
        Tracker {
            server,
            next_id: 1,
            output_schemas,
        }
    }

    fn home(&self) -> PathBuf {
        std::fs::canonicalize(self.server.sandbox.path()).unwrap()
    }

    fn project(&self, name: &str) -> String {
        self.home()
            .join("projects")
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.next_id += 1;
        let answer = self
            .server
            .call_tool(json!(self.next_id), tool, arguments.clone());
        assert!(
            answer.get("result").is_some(),
            "{tool} {arguments}: {answer}"
        );
        answer["result"].clone()
    }

    /// A successful call's structuredContent, checked against the tool's outputSchema.
    fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone());
        assert_eq!(result["isError"], false, "{tool} {arguments}: {result}");
        let structured = result["structuredContent"].clone();
        let validator = &self.output_schemas[tool];
        let errors: Vec<String> = validator
            .iter_errors(&structured)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{tool}: {errors:?}\n{structured:#}");
        assert!(
            !result["content"][0]["text"].as_str().unwrap().is_empty(),
            "{result}"
        );
        structured
    }

    /// A failed call's error text.
    fn err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone());
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        result["content"][0]["text"].as_str().unwrap().to_owned()
    }

    fn add(&mut self, project: &str, title: &str, extra: Value) -> String {
        let mut arguments = json!({"title": title, "project_path": project});
        for (key, value) in extra.as_object().unwrap() {
            arguments[key] = value.clone();
        }
        self.ok("add_bug", arguments)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn ids(&mut self, tool: &str, arguments: Value) -> Vec<String> {
        self.ok(tool, arguments)["bugs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn every_tool_works_through_the_sandboxed_binary() {
    let mut t = Tracker::start(None);
    let a = t.project("a");

    let init = t.ok("init_bugtracker", json!({"project_path": a}));
    assert_eq!(
        init,
        json!({"project_path": a, "created": true, "bug_count": 0})
    );
    let again = t.ok("init_bugtracker", json!({"project_path": format!("{a}/.")}));
    assert_eq!(again["created"], false, "re-initialising is harmless");

    let added = t.ok(
        "add_bug",
        json!({
            "title": "  Login button not responding ",
            "description": "The login button doesn't trigger the auth flow",
            "priority": "high",
            "tags": ["UI", "auth", "ui"],
            "project_path": a
        }),
    );
    assert_eq!(added["id"], "BUG-001");
    assert_eq!(added["title"], "Login button not responding");
    assert_eq!(added["status"], "open");
    assert_eq!(added["tags"], json!(["auth", "ui"]));
    assert_eq!(added["history"][0]["action"], "created");
    let second = t.add(&a, "Crash when saving", json!({"tags": ["editor"]}));
    let third = t.add(&a, "Slow start-up", json!({"priority": "low"}));
    assert_eq!((second.as_str(), third.as_str()), ("BUG-002", "BUG-003"));
    assert_eq!(
        t.ok("get_bug", json!({"bug_id": "BUG-002", "project_path": a}))["priority"],
        "medium",
        "the default priority"
    );

    // Update every field at once: one history entry listing each change, with the note.
    let updated = t.ok(
        "update_bug",
        json!({
            "bug_id": "bug-1",
            "status": "in_progress",
            "priority": "critical",
            "tags": ["auth", "Regression"],
            "title": "Login button dead",
            "description": "onClick handler missing",
            "note": "Identified missing onClick handler",
            "project_path": a
        }),
    );
    let entry = &updated["history"][1];
    assert_eq!(entry["action"], "updated");
    assert_eq!(entry["note"], "Identified missing onClick handler");
    let fields: Vec<&str> = entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["description", "priority", "status", "tags", "title"]
    );
    let status = entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "status")
        .unwrap();
    assert_eq!(
        status,
        &json!({"field": "status", "old": "open", "new": "in_progress"})
    );
    assert_eq!(updated["tags"], json!(["auth", "regression"]));

    // A note-only update is one more entry with no changes.
    let noted = t.ok(
        "update_bug",
        json!({"bug_id": "BUG-001", "note": "waiting for review", "project_path": a}),
    );
    assert_eq!(noted["history"].as_array().unwrap().len(), 3);
    assert_eq!(noted["history"][2]["changes"], json!([]));

    // Relations keep their inverse on the other bug, and replacing them removes it.
    let related = t.ok(
        "update_bug",
        json!({
            "bug_id": "BUG-001",
            "related_bugs": [{"bug_id": "BUG-002", "relationship": "blocks"}, "BUG-003"],
            "project_path": a
        }),
    );
    assert_eq!(
        related["related_bugs"],
        json!([
            {"bug_id": "BUG-002", "relationship": "blocks", "title": "Crash when saving", "status": "open"},
            {"bug_id": "BUG-003", "relationship": "related_to", "title": "Slow start-up", "status": "open"}
        ])
    );
    let blocked = t.ok("get_bug", json!({"bug_id": "BUG-002", "project_path": a}));
    assert_eq!(blocked["related_bugs"][0]["relationship"], "blocked_by");
    assert_eq!(blocked["related_bugs"][0]["bug_id"], "BUG-001");
    // The other side records the change too.
    let entry = blocked["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(entry["action"], "related");
    assert_eq!(
        entry["changes"],
        json!([{"field": "related_bugs", "old": "", "new": "blocked_by BUG-001"}])
    );
    let other = t.ok("get_bug", json!({"bug_id": "BUG-003", "project_path": a}));
    assert_eq!(other["related_bugs"][0]["relationship"], "related_to");

    // `ready`: BUG-002 waits for BUG-001 (in progress); BUG-003 is open and unblocked.
    assert_eq!(
        t.ids("list_bugs", json!({"ready": true, "project_path": a})),
        ["BUG-003"]
    );

    // close_bug records the resolution; BUG-001 is not open, so BUG-002 still waits until
    // its blocker is closed.
    let closed = t.ok(
        "close_bug",
        json!({"bug_id": "BUG-001", "resolution": "Added onClick handler", "project_path": a}),
    );
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    let last = closed["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "closed");
    assert_eq!(last["note"], "Added onClick handler");
    assert_eq!(
        t.ids("list_bugs", json!({"ready": true, "project_path": a})),
        ["BUG-002", "BUG-003"]
    );
    // Reopening clears closed_at.
    let reopened = t.ok(
        "update_bug",
        json!({"bug_id": "BUG-001", "status": "open", "project_path": a}),
    );
    assert!(reopened["closed_at"].is_null());
    assert_eq!(
        t.ids("list_bugs", json!({"ready": true, "project_path": a})),
        ["BUG-001", "BUG-003"],
        "BUG-002 is blocked again; critical first"
    );

    // Filters.
    assert_eq!(
        t.ids("list_bugs", json!({"priority": "low", "project_path": a})),
        ["BUG-003"]
    );
    assert_eq!(
        t.ids(
            "list_bugs",
            json!({"status": "open", "tags": ["AUTH"], "project_path": a})
        ),
        ["BUG-001"]
    );
    assert!(
        t.ids(
            "list_bugs",
            json!({"tags": ["auth", "editor"], "project_path": a})
        )
        .is_empty(),
        "tags must all match"
    );
    // Full text: title, description and notes; every word; prefixes.
    assert_eq!(
        t.ids("list_bugs", json!({"query": "onclick", "project_path": a})),
        ["BUG-001"]
    );
    assert_eq!(
        t.ids("list_bugs", json!({"query": "review", "project_path": a})),
        ["BUG-001"],
        "notes are searched"
    );
    assert_eq!(
        t.ids("list_bugs", json!({"query": "sav*", "project_path": a})),
        ["BUG-002"]
    );
    assert!(
        t.ids(
            "list_bugs",
            json!({"query": "crash start-up", "project_path": a})
        )
        .is_empty()
    );
    assert_eq!(
        t.ids(
            "list_bugs",
            json!({"query": "\"OR NEAR(", "project_path": a})
        )
        .len(),
        0,
        "FTS syntax in the query is text, not an error"
    );

    // Pagination: total stays, pages do not overlap.
    let first = t.ok("list_bugs", json!({"limit": 2, "project_path": a}));
    assert_eq!(first["total"], 3);
    let page_two = t.ok(
        "list_bugs",
        json!({"limit": 2, "offset": 2, "project_path": a}),
    );
    assert_eq!(page_two["total"], 3);
    assert_eq!(page_two["bugs"].as_array().unwrap().len(), 1);
    let mut seen: Vec<String> = first["bugs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page_two["bugs"].as_array().unwrap())
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["BUG-001", "BUG-002", "BUG-003"]);
    let text = t.call("list_bugs", json!({"limit": 2, "project_path": a}));
    assert!(
        text["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("offset 2"),
        "{text}"
    );

    // search_bugs_global names each bug's project.
    let global = t.ok("search_bugs_global", json!({"priority": "critical"}));
    assert_eq!(global["projects_searched"], 1);
    assert_eq!(global["bugs"][0]["project_path"], a.as_str());
    t.server.assert_alive();
    assert!(t.server.finish().success());
}

#[test]
fn projects_are_isolated_and_global_search_respects_the_policy() {
    let shared = Sandbox::new();
    let database = shared.path().join("bugs.db");
    let mut t = Tracker::start(Some(shared.path()));
    let (a, b) = (t.project("a"), t.project("b"));
    for project in [&a, &b] {
        t.ok("init_bugtracker", json!({"project_path": project}));
    }
    assert_eq!(t.add(&a, "Only in A", json!({})), "BUG-001");
    assert_eq!(
        t.add(&b, "Only in B", json!({"tags": ["shared"]})),
        "BUG-001"
    );
    assert_eq!(
        t.add(&b, "Second in B", json!({"tags": ["shared"]})),
        "BUG-002"
    );
    // BUG-002 exists in B only.
    let missing = t.err("get_bug", json!({"bug_id": "BUG-002", "project_path": a}));
    assert!(
        missing.contains("BUG-002 not found in project"),
        "{missing}"
    );
    assert_eq!(
        t.ok("get_bug", json!({"bug_id": "BUG-001", "project_path": a}))["title"],
        "Only in A"
    );
    // A relation across projects is refused: the other bug is "not found" here.
    let across = t.err(
        "update_bug",
        json!({"bug_id": "BUG-001", "related_bugs": ["BUG-002"], "project_path": a}),
    );
    assert!(across.contains("BUG-002 not found"), "{across}");
    // Paging across projects: critical first, then project path, then number.
    t.ok(
        "update_bug",
        json!({"bug_id": "BUG-001", "priority": "critical", "project_path": a}),
    );
    let everything = t.ok("search_bugs_global", json!({}));
    assert_eq!(everything["total"], 3);
    let order: Vec<(String, String)> = everything["bugs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bug| {
            (
                bug["project_path"].as_str().unwrap().to_owned(),
                bug["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (a.clone(), "BUG-001".to_owned()),
            (b.clone(), "BUG-001".to_owned()),
            (b.clone(), "BUG-002".to_owned())
        ]
    );
    let second_page = t.ok("search_bugs_global", json!({"limit": 2, "offset": 2}));
    assert_eq!(second_page["total"], 3);
    assert_eq!(second_page["bugs"][0]["project_path"], b.as_str());
    assert_eq!(second_page["bugs"][0]["id"], "BUG-002");
    let global = t.ok("search_bugs_global", json!({"tags": ["shared"]}));
    assert_eq!(global["total"], 2);
    assert_eq!(global["projects_searched"], 2);
    assert!(
        global["bugs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|bug| bug["project_path"] == b.as_str())
    );
    assert!(t.server.finish().success());

    // A second server whose policy no longer allows project B: global search skips it.
    let narrower = format!(
        "filesystem:\n  allowed_paths: [\"{a}/**\"]\n\
         plugins:\n  bugtracker:\n    database: \"{}\"\n",
        database.display()
    );
    let mut server = Server::start_with(&server_bin(), Some(&narrower));
    server.initialize();
    let answer = server.call_tool(json!(1), "search_bugs_global", json!({}));
    let structured = &answer["result"]["structuredContent"];
    assert_eq!(structured["projects_searched"], 1, "{answer}");
    assert_eq!(structured["total"], 1);
    assert_eq!(structured["bugs"][0]["title"], "Only in A");
    let refused = server.call_tool(json!(2), "list_bugs", json!({"project_path": b}));
    assert!(tool_text(&refused).contains("outside filesystem.allowed_paths"));
    assert!(server.finish().success());
}

#[test]
fn bad_requests_get_clear_refusals() {
    let mut t = Tracker::start(None);
    let a = t.project("a");
    let outside = t.home().join("outside").to_string_lossy().into_owned();
    t.ok("init_bugtracker", json!({"project_path": a}));
    t.add(&a, "First", json!({}));

    let cases: Vec<(&str, Value, &str)> = vec![
        ("add_bug", json!({"project_path": a}), "title"),
        (
            "add_bug",
            json!({"title": "  ", "project_path": a}),
            "title is empty",
        ),
        (
            "add_bug",
            json!({"title": "x", "priority": "urgent", "project_path": a}),
            "priority",
        ),
        (
            "add_bug",
            json!({"title": "x", "tags": ["a,b"], "project_path": a}),
            "tag",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "status": "done", "project_path": a}),
            "status",
        ),
        (
            "get_bug",
            json!({"bug_id": "BUG-042", "project_path": a}),
            "BUG-042 not found",
        ),
        (
            "get_bug",
            json!({"bug_id": "issue 7", "project_path": a}),
            "ids look like BUG-001",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "related_bugs": ["BUG-404"], "project_path": a}),
            "related_bugs: BUG-404 not found",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "project_path": a}),
            "nothing to change",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "priority": "medium", "project_path": a}),
            "nothing to change",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "related_bugs": ["BUG-001"], "project_path": a}),
            "itself",
        ),
        (
            "update_bug",
            json!({"bug_id": "BUG-001", "related_bugs": [{"bug_id": "BUG-001", "relationship": "owns"}], "project_path": a}),
            "relationship",
        ),
        (
            "list_bugs",
            json!({"project_path": outside}),
            "outside filesystem.allowed_paths",
        ),
        (
            "init_bugtracker",
            json!({"project_path": "/etc"}),
            "outside filesystem.allowed_paths",
        ),
        (
            "list_bugs",
            json!({"project_path": t.project("b")}),
            "call init_bugtracker",
        ),
        (
            "init_bugtracker",
            json!({"project_path": t.project("missing")}),
            "not an existing directory",
        ),
        (
            "list_bugs",
            json!({"query": " * ", "project_path": a}),
            "no words",
        ),
        ("list_bugs", json!({"limit": 0, "project_path": a}), "limit"),
        // The server's cwd (its temp dir) is outside the allowed paths, so the default is refused.
        ("list_bugs", json!({}), "pass project_path"),
    ];
    for (tool, arguments, expected) in cases {
        let text = t.err(tool, arguments.clone());
        assert!(text.contains(expected), "{tool} {arguments}: {text}");
    }
    t.ok("close_bug", json!({"bug_id": "BUG-001", "project_path": a}));
    let twice = t.err("close_bug", json!({"bug_id": "BUG-001", "project_path": a}));
    assert!(twice.contains("already closed"), "{twice}");
    // Nothing above changed the bug beyond the one close.
    let bug = t.ok("get_bug", json!({"bug_id": "BUG-001", "project_path": a}));
    assert_eq!(bug["history"].as_array().unwrap().len(), 2);
    t.server.assert_alive();
    assert!(t.server.finish().success());
}

#[test]
fn the_default_project_comes_from_mcp_project_path() {
    let shared = Sandbox::new();
    let mut command = shared.command(&server_bin());
    make_projects(shared.path());
    let project = std::fs::canonicalize(shared.path().join("projects/a")).unwrap();
    let policy = shared.policy(&crate::harness::kill_mode(&policy(None)));
    command
        .env("MCP_PROJECT_PATH", &project)
        .arg("--policy")
        .arg(&policy)
        .stderr(std::process::Stdio::null());
    let mut client = mcp_secure_server::client::StdioClient::spawn(command).unwrap();
    client.initialize(TIMEOUT).unwrap();
    let init = client
        .call_method(
            json!(1),
            "tools/call",
            json!({"name": "init_bugtracker", "arguments": {}}),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(
        init["structuredContent"]["project_path"],
        project.to_str().unwrap(),
        "{init}"
    );
    let added = client
        .call_method(
            json!(2),
            "tools/call",
            json!({"name": "add_bug", "arguments": {"title": "default project"}}),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(added["structuredContent"]["id"], "BUG-001", "{added}");
    assert!(client.finish(TIMEOUT).unwrap().success());
}

#[test]
fn the_database_is_private_and_inside_the_state_directory() {
    let t = Tracker::start(None);
    let (status, sandbox) = t.server.stop();
    assert!(status.success());
    let database = sandbox.path().join("state/mcp-secure-server/bugs.db");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&database).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", database.display());
    let dir_mode = std::fs::metadata(database.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let connection = rusqlite::Connection::open(&database).unwrap();
    let journal: String = connection
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn two_servers_updating_one_bug_lose_no_history() {
    const UPDATES: usize = 200;
    let shared = Sandbox::new();
    let mut first = Tracker::start(Some(shared.path()));
    let second = Tracker::start(Some(shared.path()));
    let project = shared_project(shared.path());
    first.ok("init_bugtracker", json!({"project_path": project}));
    first.add(&project, "Contended", json!({}));

    let writers: Vec<_> = [(first, "first"), (second, "second")]
        .into_iter()
        .map(|(mut tracker, name)| {
            let project = project.clone();
            std::thread::spawn(move || {
                for i in 0..UPDATES {
                    let priority = ["low", "high"][i % 2];
                    tracker.ok(
                        "update_bug",
                        json!({
                            "bug_id": "BUG-001",
                            "priority": priority,
                            "note": format!("{name} {i}"),
                            "project_path": project
                        }),
                    );
                }
                tracker
            })
        })
        .collect();
    let mut trackers: Vec<Tracker> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    let bug = trackers[0].ok(
        "get_bug",
        json!({"bug_id": "BUG-001", "project_path": project}),
    );
    let history = bug["history"].as_array().unwrap();
    assert_eq!(history.len(), 1 + 2 * UPDATES, "one entry per update");
    let mut notes: Vec<&str> = history[1..]
        .iter()
        .map(|h| h["note"].as_str().unwrap())
        .collect();
    notes.sort_unstable();
    let mut expected: Vec<String> = ["first", "second"]
        .iter()
        .flat_map(|name| (0..UPDATES).map(move |i| format!("{name} {i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(notes, expected);
    // Each entry's "old" priority is the previous entry's "new": no lost update in between.
    let mut current = "medium".to_owned();
    for entry in &history[1..] {
        if let Some(change) = entry["changes"].as_array().unwrap().first() {
            assert_eq!(change["old"], current.as_str(), "{entry}");
            current = change["new"].as_str().unwrap().to_owned();
        }
    }
    assert_eq!(bug["priority"], current.as_str());
    for tracker in trackers.drain(..) {
        assert!(tracker.server.finish().success());
    }
}

#[test]
fn sigkill_mid_stream_keeps_every_answered_bug() {
    // A window of calls stays in flight (under the admission limit of 4 x max_in_flight), so
    // the kill lands while the server is writing.
    const WINDOW: usize = 100;
    const READ: usize = 300;
    let shared = Sandbox::new();
    let database = shared.path().join("bugs.db");
    let mut t = Tracker::start(Some(shared.path()));
    let a = shared_project(shared.path());
    t.ok("init_bugtracker", json!({"project_path": a}));
    let mut sent = 0;
    let mut send = |server: &mut Server| {
        server.send(json!({
            "jsonrpc": "2.0", "id": format!("add-{sent}"), "method": "tools/call",
            "params": {"name": "add_bug", "arguments": {"title": format!("stream {sent}"), "project_path": a}}
        }));
        sent += 1;
    };
    for _ in 0..WINDOW {
        send(&mut t.server);
    }
    let mut answered = Vec::new();
    while answered.len() < READ {
        let message = t.server.recv();
        let bug = &message["result"]["structuredContent"];
        assert_eq!(message["result"]["isError"], false, "{message}");
        answered.push((
            bug["id"].as_str().unwrap().to_owned(),
            bug["title"].as_str().unwrap().to_owned(),
        ));
        send(&mut t.server);
    }
    // The child is not reaped until wait_exit, so its pid cannot have been reused.
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(t.server.client.pid()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let status = t.server.client.wait_exit(TIMEOUT).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let connection = rusqlite::Connection::open(&database).unwrap();
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored: HashMap<String, String> = connection
        .prepare("SELECT printf('BUG-%03d', number), title FROM bugs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, title) in &answered {
        assert_eq!(stored.get(id), Some(title), "answered {id} is missing");
    }
    let fts_rows: i64 = connection
        .query_row("SELECT count(*) FROM bug_text", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        fts_rows as usize,
        stored.len(),
        "search index matches the bugs"
    );
    drop(connection);

    // A new server opens the file and carries on with the next number.
    let mut next = Tracker::start(Some(shared.path()));
    let listed = next.ok("list_bugs", json!({"limit": 1, "project_path": a}));
    assert_eq!(listed["total"].as_u64().unwrap() as usize, stored.len());
    let id = next.add(&a, "after the crash", json!({}));
    assert_eq!(id, format!("BUG-{:03}", stored.len() + 1));
    assert!(next.server.finish().success());
}

#[test]
fn a_version_one_database_is_upgraded_in_place() {
    let shared = Sandbox::new();
    let project = shared_project(shared.path());
    let database = shared.path().join("bugs.db");
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bugs-schema-v1.sql"),
    )
    .unwrap()
    .replace("@PROJECT@", &project);
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute_batch(&fixture)
        .unwrap();

    let mut t = Tracker::start(Some(shared.path()));
    // Full-text search did not exist in version 1: the upgrade indexed the old bugs and notes.
    assert_eq!(
        t.ids(
            "list_bugs",
            json!({"query": "joiner", "project_path": project})
        ),
        ["BUG-001"]
    );
    let bug = t.ok(
        "get_bug",
        json!({"bug_id": "BUG-001", "project_path": project}),
    );
    assert_eq!(bug["tags"], json!(["parser", "unicode"]));
    assert_eq!(bug["related_bugs"][0]["bug_id"], "BUG-002");
    assert_eq!(bug["history"][1]["changes"][0]["new"], "in_progress");
    // Numbering continues after the old counter.
    assert_eq!(t.add(&project, "New after upgrade", json!({})), "BUG-003");
    assert!(t.server.finish().success());

    let version: i64 = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

/// A database in the Python original's format (its `bugs` table, JSON columns).
fn original_database(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE bugs (id TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT,
                status TEXT NOT NULL, priority TEXT NOT NULL, tags TEXT NOT NULL,
                related_bugs TEXT NOT NULL, created_at TEXT NOT NULL, history TEXT NOT NULL)",
        )
        .unwrap();
    let rows = [
        (
            "bug-1a2b3c4d",
            "Login button not responding",
            "high",
            "in_progress",
            r#"["ui", "auth"]"#,
            r#"[{"bug_id": "bug-99999999", "relationship": "blocks"}]"#,
            "2026-01-05T10:00:00+00:00",
            r#"[{"timestamp": "2026-01-05T11:00:00+00:00", "changes": {"status": ["open", "in_progress"]}, "note": "Identified missing onClick handler"}]"#,
        ),
        (
            "bug-99999999",
            "Session expires too early",
            "medium",
            "open",
            "[]",
            r#"[{"bug_id": "bug-1a2b3c4d", "relationship": "blocked_by"}, {"bug_id": "bug-deadbeef", "relationship": "related_to"}, {"bug_id": "bug-99999999", "relationship": "related_to"}]"#,
            "2026-01-06T10:00:00+00:00",
            "[]",
        ),
        // The original checked neither titles nor tags.
        (
            "bug-0000c0de",
            "A title written\nover two lines",
            "low",
            "closed",
            r#"["C#", "P1!", "a,b"]"#,
            "[]",
            "2026-01-07T10:00:00+00:00",
            "[]",
        ),
    ];
    for (id, title, priority, status, tags, related, created, history) in rows {
        connection
            .execute(
                "INSERT INTO bugs VALUES (?1, ?2, 'old description', ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![id, title, status, priority, tags, related, created, history],
            )
            .unwrap();
    }
}

#[test]
fn the_original_database_imports_with_its_ids_as_aliases() {
    let shared = Sandbox::new();
    let project = shared_project(shared.path());
    let old = Path::new(&project).join(".bugtracker");
    std::fs::create_dir_all(&old).unwrap();
    let old = old.join("bugs.db");
    original_database(&old);
    let policy = shared.policy(&policy(Some(shared.path())));
    let import = || {
        stdout_of_success(
            shared
                .command(&server_bin())
                .arg("--policy")
                .arg(&policy)
                .args(["bugs", "import"])
                .arg(&old),
        )
    };
    let stdout = import();
    assert!(stdout.contains("imported 3 bug(s)"), "{stdout}");
    assert!(stdout.contains("cannot relate to itself"), "{stdout}");
    assert!(stdout.contains("bug-1a2b3c4d -> BUG-001"), "{stdout}");
    assert!(
        stdout.contains("bug-deadbeef"),
        "the dangling relation is reported: {stdout}"
    );
    let again = import();
    assert!(
        again.contains("imported 0 bug(s)"),
        "a second import skips what is there"
    );

    let mut t = Tracker::start(Some(shared.path()));
    let bug = t.ok(
        "get_bug",
        json!({"bug_id": "BUG-1A2B3C4D", "project_path": project}),
    );
    assert_eq!(bug["id"], "BUG-001");
    assert_eq!(bug["aliases"], json!(["bug-1a2b3c4d"]));
    assert_eq!(bug["status"], "in_progress");
    assert_eq!(bug["tags"], json!(["auth", "ui"]));
    assert_eq!(bug["created_at"], "2026-01-05T10:00:00+00:00");
    let actions: Vec<&str> = bug["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "updated", "imported"]);
    assert_eq!(
        bug["history"][1]["note"],
        "Identified missing onClick handler"
    );
    assert_eq!(
        bug["history"][1]["changes"],
        json!([{"field": "status", "old": "open", "new": "in_progress"}])
    );
    assert_eq!(
        bug["related_bugs"],
        json!([{"bug_id": "BUG-002", "relationship": "blocks", "title": "Session expires too early", "status": "open"}])
    );
    // Imported notes are searchable, and new bugs continue the numbering.
    assert_eq!(
        t.ids(
            "list_bugs",
            json!({"query": "onclick", "project_path": project})
        ),
        ["BUG-001"]
    );
    let adapted = t.ok(
        "get_bug",
        json!({"bug_id": "bug-0000c0de", "project_path": project}),
    );
    assert_eq!(adapted["title"], "A title written over two lines");
    assert_eq!(adapted["tags"], json!(["a-b", "c#", "p1!"]));
    assert_eq!(adapted["status"], "closed");
    assert!(adapted["closed_at"].is_string());
    assert_eq!(t.add(&project, "Brand new", json!({})), "BUG-004");
    assert!(t.server.finish().success());

    // A relative path works from inside the project.
    let stdout = stdout_of_success(
        shared
            .command(&server_bin())
            .current_dir(&project)
            .arg("--policy")
            .arg(&policy)
            .args(["bugs", "import", ".bugtracker/bugs.db"]),
    );
    assert!(stdout.contains("imported 0 bug(s)"), "{stdout}");

    // A row the original could not have written stops the import, naming the bug and field,
    // and nothing (not even the project) is registered.
    let broken_project = shared.path().join("projects/broken");
    std::fs::create_dir_all(broken_project.join(".bugtracker")).unwrap();
    let broken = broken_project.join(".bugtracker/bugs.db");
    original_database(&broken);
    rusqlite::Connection::open(&broken)
        .unwrap()
        .execute(
            "UPDATE bugs SET history = '{not json' WHERE id = 'bug-99999999'",
            [],
        )
        .unwrap();
    let out = shared
        .command(&server_bin())
        .arg("--policy")
        .arg(&policy)
        .args(["bugs", "import"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bug-99999999")
            && stderr.contains("history")
            && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    let projects: i64 = rusqlite::Connection::open(shared.path().join("bugs.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(projects, 1, "the broken project was not registered");

    // A file that is not the original's format is refused, and nothing is imported.
    let bogus = shared.path().join("bogus.db");
    rusqlite::Connection::open(&bogus)
        .unwrap()
        .execute_batch("CREATE TABLE other (x)")
        .unwrap();
    let out = shared
        .command(&server_bin())
        .arg("--policy")
        .arg(&policy)
        .args(["bugs", "import"])
        .arg(&bogus)
        .args(["--project", &project])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no `bugs` table"), "{stderr}");
}

#[test]
fn a_disabled_tracker_serves_no_bug_tools_and_creates_no_database() {
    let mut server = Server::start_with(
        &server_bin(),
        Some("plugins:\n  bugtracker:\n    enabled: false\n"),
    );
    server.initialize();
    let list = server.request(json!(1), "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["search_tools", "list_categories", "web_search"]);
    let (status, sandbox) = server.stop();
    assert!(status.success());
    assert!(
        !sandbox
            .path()
            .join("state/mcp-secure-server/bugs.db")
            .exists()
    );
}
