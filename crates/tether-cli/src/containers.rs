//! `tether containers`: a VM's containers with the laptop port of each published port, and a
//! whole Compose project started, stopped or restarted in dependency order.

use anyhow::Result;
use clap::Args;
use tether_core::containers::Action;
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;
use crate::{output, show};

/// What to do with a whole Compose project: exactly one.
#[derive(Args)]
#[group(id = "project_action", multiple = false, requires = "project")]
pub struct ProjectActionArgs {
    /// Start the project's containers, each after the services it depends on
    #[arg(long)]
    pub start: bool,
    /// Stop them, each before the services it depends on
    #[arg(long)]
    pub stop: bool,
    /// Restart them, in start order
    #[arg(long)]
    pub restart: bool,
}

pub async fn list(paths: &Paths, name: Option<String>, json: bool) -> Result<()> {
    show(paths, &Request::Containers { name }, json, output::containers).await
}

pub async fn project(
    paths: &Paths,
    name: Option<String>,
    project: String,
    a: ProjectActionArgs,
    json: bool,
) -> Result<()> {
    let action = if a.start {
        Action::Start
    } else if a.stop {
        Action::Stop
    } else {
        Action::Restart
    };
    let mut e = Engine::ensure(paths).await?;
    let done: Vec<String> = e
        .ask(&Request::ProjectAction {
            name,
            project: project.clone(),
            action,
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        let verb = match action {
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Restart => "restarted",
        };
        println!(
            "{verb} project {}: {}",
            output::clean(&project),
            output::clean(&done.join(", "))
        );
    }
    Ok(())
}
