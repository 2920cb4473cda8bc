//! The onboarding checks: each answers one question about a VM ("does SSH work?", "may this
//! user use Docker?") and, when the answer is no, says how to fix it. They run over a fresh
//! login with the VM's own credentials and never change anything on the VM.

use russh::ChannelOpenFailure;

use crate::config::{Arch, Profile};
use crate::docker;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::remote::{self, quote};
use crate::ssh::{self, ClientHandler};
use crate::target::Target;

pub use crate::api::Check;

pub(crate) const TITLES: [(&str, &str); 5] = [
    ("ssh", "SSH login works"),
    ("socket", "The Docker socket is on the VM"),
    ("access", "The user may use Docker"),
    ("forwarding", "sshd allows socket forwarding"),
    ("arch", "The engine's architecture matches"),
];

/// The checks that need a login, over `handle`.
pub(crate) async fn over(
    handle: &russh::client::Handle<ClientHandler>,
    profile: &Profile,
    target: &Target,
) -> Vec<Check> {
    let sock = &profile.remote_socket;
    let user = &target.user;
    let script = format!(
        "p={}; for t in e S; do if test -$t \"$p\"; then printf 1; else printf 0; fi; done; \
         if test -r \"$p\" && test -w \"$p\"; then printf 1; else printf 0; fi; echo; id -nG",
        quote(sock)
    );
    let facts = remote::run(handle, &script, None, std::time::Duration::from_secs(10)).await;
    let (flags, groups) = match &facts {
        Ok(o) => {
            let mut lines = o.stdout.lines();
            (
                lines.next().unwrap_or("").to_string(),
                lines.next().unwrap_or("").to_string(),
            )
        }
        Err(_) => (String::new(), String::new()),
    };
    let flag = |i: usize| flags.as_bytes().get(i) == Some(&b'1');
    let mut out = Vec::new();
    let present = flag(0) && flag(1);
    out.push(Check::new(
        "socket",
        TITLES[1].1,
        present,
        if present {
            format!("{sock} is there")
        } else if flag(0) {
            format!("{sock} exists but is not a socket")
        } else {
            format!("{sock} does not exist on the VM")
        },
        Some(
            "install and start Docker on the VM (`sudo apt install docker.io && sudo systemctl enable --now docker`), \
             or give the socket's path if Docker listens elsewhere"
                .into(),
        ),
    ));
    let access = flag(2);
    out.push(Check::new(
        "access",
        TITLES[2].1,
        access,
        if access {
            format!("{user} can read and write {sock}")
        } else {
            format!(
                "{user} cannot open {sock} (groups: {})",
                if groups.is_empty() { "none" } else { &groups }
            )
        },
        Some(format!(
            "add {user} to the docker group on the VM (`sudo usermod -aG docker {user}`), then check again"
        )),
    ));
    let forwarding = match handle.channel_open_direct_streamlocal(sock.as_str()).await {
        Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited)) => false,
        Ok(ch) => {
            let _ = ch.close().await;
            true
        }
        // OpenSSH answers "connect failed" when its policy forbids it, too: look on the VM.
        Err(_) => docker::socket_problem(handle, sock).await != docker::SocketProblem::Forbidden,
    };
    out.push(Check::new(
        "forwarding",
        TITLES[3].1,
        forwarding,
        if forwarding { "stream-local forwarding is allowed".into() } else { "sshd refuses to forward Unix sockets".into() },
        Some("set `AllowStreamLocalForwarding yes` in /etc/ssh/sshd_config on the VM and reload sshd (`sudo systemctl reload ssh`)".into()),
    ));
    let info = docker::probe(handle, sock, user).await;
    let (ok, detail, fix) = match (info.ok, info.arch.as_deref().and_then(Arch::from_engine), profile.arch) {
        (false, _, _) => (
            false,
            format!("cannot ask the engine: {}", info.error.unwrap_or_default()),
            "fix the checks above, then check again".to_string(),
        ),
        (true, Some(got), Some(want)) if got != want => (
            false,
            format!("the VM is set as {want}, but its engine runs {got}"),
            format!("set the VM's architecture to {got}; images built for {want} would run emulated or not at all"),
        ),
        (true, got, want) => (
            true,
            format!(
                "Docker {} on {}/{}{}",
                info.version.unwrap_or_default(),
                info.os.unwrap_or_default(),
                info.arch.unwrap_or_default(),
                if want.is_none() {
                    format!(
                        " (no architecture set on the VM; {} fits)",
                        got.map(|a| a.to_string()).unwrap_or_default()
                    )
                } else {
                    String::new()
                }
            ),
            String::new(),
        ),
    };
    out.push(Check::new("arch", TITLES[4].1, ok, detail, Some(fix)));
    out
}

impl Engine {
    /// Runs every onboarding check on VM `name` over a fresh login.
    pub async fn check_vm(&self, name: &str) -> Result<Vec<Check>, EngineError> {
        let profile = self.config().await.vm(name)?.clone();
        let target = crate::target::resolve(&profile)?;
        let login = async {
            let logins = crate::identity::logins_for(&profile, &target, &self.inner.keys).await?;
            ssh::connect(
                &target,
                self.host_key_policy(),
                logins,
                None,
                ssh::Timeouts::default(),
                None,
            )
            .await
        };
        let conn = match login.await {
            Ok(c) => c,
            Err(e) => {
                let mut out = vec![Check::new(
                    "ssh",
                    TITLES[0].1,
                    false,
                    e.to_string(),
                    Some(e.to_string()),
                )];
                out[0].fix = Some("fix the login first: the message above says how".into());
                out.extend(
                    TITLES[1..]
                        .iter()
                        .map(|(id, title)| Check::new(id, title, false, "not checked: needs SSH".into(), None)),
                );
                return Ok(out);
            }
        };
        let mut out = vec![Check::new(
            "ssh",
            TITLES[0].1,
            true,
            format!("logged in as {}", target.display()),
            None,
        )];
        out.extend(over(&conn.handle, &profile, &target).await);
        let _ = conn.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        Ok(out)
    }
}
