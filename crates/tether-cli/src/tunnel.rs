//! `tether tunnel`: port tunnels both ways (this laptop's ports to the VM's, and the VM's to this
//! laptop's), automatic forwarding of published container ports, and the list of them all.

use anyhow::Result;
use clap::Args;
use tether_core::api::VmStatus;
use tether_core::config::{PortMap, ReverseMap, Store};
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;
use crate::{on_off, output};

#[derive(Args)]
pub struct TunnelArgs {
    /// The VM (default: the active one)
    name: Option<String>,
    /// LOCAL[:REMOTE], e.g. 3000 or 5433:5432. Repeatable.
    #[arg(short = 'p', long = "port", value_name = "LOCAL[:REMOTE]")]
    ports: Vec<String>,
    /// Remove the tunnel on this local port. Repeatable.
    #[arg(long = "rm", value_name = "PORT")]
    rm: Vec<u16>,
    /// The VM's port REMOTE (on its 127.0.0.1) comes to this laptop's port LOCAL (default: the
    /// same), e.g. 5432 or 15432:5432. A container on the VM reaches it with `--network host` at
    /// 127.0.0.1:REMOTE. With BIND `docker` (docker:5432) the VM listens on its Docker bridge's
    /// gateway instead, which containers on the default bridge network reach (172.17.0.1 as a
    /// rule); that needs `GatewayPorts clientspecified` in the VM's sshd_config. BIND may also be
    /// one address of the VM, never all of them. Repeatable.
    #[arg(long = "reverse", short = 'R', value_name = "[BIND:]REMOTE[:LOCAL]")]
    reverse: Vec<String>,
    /// Remove the reverse tunnel on the VM's port PORT. Repeatable.
    #[arg(long = "rm-reverse", value_name = "PORT")]
    rm_reverse: Vec<u16>,
    /// List the tunnels.
    #[arg(long)]
    list: bool,
    /// Forward this VM's published container ports automatically (on|off).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    auto: Option<bool>,
    /// The default of --auto for VMs that do not set it (on|off).
    #[arg(long, value_name = "on|off", value_parser = on_off, conflicts_with = "auto")]
    auto_default: Option<bool>,
    /// Let automatic forwards use laptop ports below 1024 (on), or move them up by 10000 (off).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    privileged_ports: Option<bool>,
}

pub async fn tunnel(paths: &Paths, t: TunnelArgs) -> Result<()> {
    let maps: Vec<PortMap> = t.ports.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    let reverse: Vec<ReverseMap> = t.reverse.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    if maps.is_empty()
        && reverse.is_empty()
        && t.rm_reverse.is_empty()
        && t.rm.is_empty()
        && !t.list
        && t.auto.is_none()
        && t.auto_default.is_none()
        && t.privileged_ports.is_none()
    {
        anyhow::bail!(
            "nothing to do: give -p LOCAL[:REMOTE] to add a tunnel, --reverse REMOTE[:LOCAL] to let the VM reach this laptop, --rm PORT or --rm-reverse PORT to remove one, --list, or --auto on|off"
        );
    }
    let mut e = Engine::ensure(paths).await?;
    if let Some(on) = t.auto {
        let name = Store::new(paths.config_file()).load()?.resolve(t.name.as_deref())?;
        e.call(&Request::SetAutoForward {
            name: Some(name.clone()),
            on,
        })
        .await?;
        println!(
            "automatic forwarding of published container ports is {} for '{name}'",
            if on { "on" } else { "off" }
        );
    }
    if let Some(on) = t.privileged_ports {
        e.call(&Request::SetPrivilegedPorts { on }).await?;
        println!(
            "automatic forwards {} ports below 1024",
            if on { "may use" } else { "move up by 10000 from" }
        );
    }
    if let Some(on) = t.auto_default {
        e.call(&Request::SetAutoForward { name: None, on }).await?;
        println!("automatic forwarding is {} by default", if on { "on" } else { "off" });
    }
    if !maps.is_empty() {
        e.call(&Request::TunnelAdd {
            name: t.name.clone(),
            maps: maps.clone(),
        })
        .await?;
        for m in &maps {
            println!("tunnel 127.0.0.1:{} → VM port {} added", m.local, m.remote);
        }
    }
    if !t.rm.is_empty() {
        e.call(&Request::TunnelRemove {
            name: t.name.clone(),
            ports: t.rm.clone(),
        })
        .await?;
        for p in &t.rm {
            println!("tunnel on local port {p} removed");
        }
    }
    if !reverse.is_empty() {
        e.call(&Request::ReverseAdd {
            name: t.name.clone(),
            maps: reverse.clone(),
        })
        .await?;
        let listening: Vec<VmStatus> = e.ask(&Request::Status).await?;
        for m in &reverse {
            let address = listening
                .iter()
                .filter(|v| t.name.as_deref().map_or(v.active, |n| v.name == n))
                .flat_map(|v| v.reverse.iter())
                .find(|r| r.remote == m.remote)
                .and_then(|r| r.address.clone());
            match (m.bind, address) {
                (Some(_), Some(addr)) => println!(
                    "reverse tunnel VM {addr}:{} → this laptop's port {} added; a container on the VM's bridge network \
                     reaches it at {addr}:{}",
                    m.remote, m.local, m.remote
                ),
                _ => println!(
                    "reverse tunnel VM 127.0.0.1:{} → this laptop's port {} added; a container reaches it with --network host",
                    m.remote, m.local
                ),
            }
        }
    }
    if !t.rm_reverse.is_empty() {
        e.call(&Request::ReverseRemove {
            name: t.name.clone(),
            ports: t.rm_reverse.clone(),
        })
        .await?;
        for p in &t.rm_reverse {
            println!("reverse tunnel on the VM's port {p} removed");
        }
    }
    if t.list {
        let all: Vec<VmStatus> = e.ask(&Request::Status).await?;
        let cfg = Store::new(paths.config_file()).load()?;
        let name = cfg.resolve(t.name.as_deref())?;
        output::tunnels(all.iter().find(|v| v.name == name));
    }
    Ok(())
}
