; Tether's additions to Tauri's NSIS installer (per-user, no UAC prompt). tether.exe is installed
; beside the app as a bundle resource (installers/windows/tauri.conf.json, which
; installers/build.sh adds); these hooks put the install folder on the user's PATH so `tether`
; works in a new terminal, and take it off again on uninstall. The user's config and keys stay.
;
; The folder reaches PowerShell through the environment (TETHER_INSTDIR), never inside its code,
; so a quote in the profile path cannot end a string there. The user's Path is read and written
; as the registry holds it: REG_EXPAND_SZ with its %VARIABLES% unexpanded ([Environment]'s
; SetEnvironmentVariable would write it back expanded, as REG_SZ). Every window is then told
; that the environment changed (0xFFFF: all top-level windows; 0x1A: WM_SETTINGCHANGE).

!macro NSIS_HOOK_POSTINSTALL
  System::Call 'Kernel32::SetEnvironmentVariable(t "TETHER_INSTDIR", t "$INSTDIR")i'
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$k = Get-Item -LiteralPath ''HKCU:\Environment''; $$p = $$k.GetValue(''Path'', '''', ''DoNotExpandEnvironmentNames''); $$d = $$env:TETHER_INSTDIR; $$parts = @($$p -split '';'' | Where-Object { $$_ -ne '''' }); if ($$parts -notcontains $$d) { New-ItemProperty -LiteralPath ''HKCU:\Environment'' -Name Path -PropertyType ExpandString -Value (($$parts + $$d) -join '';'') -Force | Out-Null }"'
  SendMessage 0xFFFF 0x1A 0 "STR:Environment" /TIMEOUT=5000
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  System::Call 'Kernel32::SetEnvironmentVariable(t "TETHER_INSTDIR", t "$INSTDIR")i'
  nsExec::ExecToLog 'powershell -NoProfile -NonInteractive -Command "$$k = Get-Item -LiteralPath ''HKCU:\Environment''; $$p = $$k.GetValue(''Path'', '''', ''DoNotExpandEnvironmentNames''); $$d = $$env:TETHER_INSTDIR; $$parts = @($$p -split '';'' | Where-Object { $$_ -ne '''' -and $$_ -ne $$d }); New-ItemProperty -LiteralPath ''HKCU:\Environment'' -Name Path -PropertyType ExpandString -Value ($$parts -join '';'') -Force | Out-Null"'
  SendMessage 0xFFFF 0x1A 0 "STR:Environment" /TIMEOUT=5000
!macroend
