; Tether's additions to Tauri's NSIS installer (per-user, no UAC prompt). tether.exe is installed
; beside the app as a bundle resource (installers/windows/tauri.conf.json, which
; installers/build.sh adds); these hooks put the install folder on the user's PATH so `tether`
; works in a new terminal, and take it off again on uninstall. The user's config and keys stay.

!macro NSIS_HOOK_POSTINSTALL
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$p=[Environment]::GetEnvironmentVariable(''Path'',''User''); if (-not ($$p -split '';'' -contains ''$INSTDIR'')) { [Environment]::SetEnvironmentVariable(''Path'', ($$p.TrimEnd('';'') + '';$INSTDIR''), ''User'') }"'
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$p=[Environment]::GetEnvironmentVariable(''Path'',''User''); [Environment]::SetEnvironmentVariable(''Path'', (($$p -split '';'' | Where-Object { $$_ -ne ''$INSTDIR'' }) -join '';''), ''User'')"'
!macroend
