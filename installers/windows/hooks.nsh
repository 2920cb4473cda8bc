; Tether's additions to Tauri's NSIS installer (per-user, no UAC prompt):
; tether.exe beside the app, and the install folder on the user's PATH so `tether` works in a
; new terminal; both undone by the uninstaller. The user's config and keys are left alone.

!macro NSIS_HOOK_POSTINSTALL
  File "/oname=$INSTDIR\tether.exe" "..\..\..\..\x86_64-pc-windows-gnu\release\tether.exe"
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$p=[Environment]::GetEnvironmentVariable(''Path'',''User''); if (-not ($$p -split '';'' -contains ''$INSTDIR'')) { [Environment]::SetEnvironmentVariable(''Path'', ($$p.TrimEnd('';'') + '';$INSTDIR''), ''User'') }"'
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$p=[Environment]::GetEnvironmentVariable(''Path'',''User''); [Environment]::SetEnvironmentVariable(''Path'', (($$p -split '';'' | Where-Object { $$_ -ne ''$INSTDIR'' }) -join '';''), ''User'')"'
  Delete "$INSTDIR\tether.exe"
!macroend
