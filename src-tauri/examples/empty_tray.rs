//! The footprint baseline: an empty Tauri 2 tray app (a tray icon with a Quit item, no window, no
//! engine), built from the same Tauri and features as the real app so that `tests/footprint.sh`
//! can report what Tether's engine and tray add on top of Tauri itself.

use tauri::RunEvent;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;

fn main() -> anyhow::Result<()> {
    let app = tauri::Builder::default()
        .setup(|app| {
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&quit])?;
            TrayIconBuilder::with_id("empty")
                .icon(Image::from_bytes(include_bytes!("../../icons/tray-disconnected.png"))?)
                .menu(&menu)
                .on_menu_event(|app, _| app.exit(0))
                .build(app)?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_, event| {
        // Like the real app: no window is no reason to exit.
        if let RunEvent::ExitRequested { api, code: None, .. } = event {
            api.prevent_exit();
        }
    });
    Ok(())
}
