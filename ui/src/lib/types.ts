// Shapes of what the engine sends. They are generated from tether-core's Rust types into
// engine.gen.ts (a test fails when that file is stale); this file only names them for the UI.

import type { ErrorBody, Event, Settings as EngineSettings, State } from "./engine.gen";

export type {
  Check,
  ContainerView,
  Disk,
  Doctor,
  EngineHealth,
  EngineInfo,
  ErrorDetails,
  ForwardState,
  ForwardStatus,
  Health,
  HealthReport,
  HostKeyScan,
  HostKeyVerdict,
  KeyView,
  KubeView,
  LogLine,
  PortView,
  RecordedKey,
  ReverseStatus,
  Sample,
  ShareView,
  SyncedFolder,
  SyncState,
  VmShares,
  SshHost,
  TimedEvent,
  UnforwardedPort,
  VmChecks,
  VmHealth,
  VmStatus,
} from "./engine.gen";

export type StateName = State["state"];

/** An event on the engine's broadcast. */
export type EngineEvent = Event;

/** How a failed command reaches the UI: a stable code, a sentence, and the facts. */
export type IpcError = ErrorBody;

/** What the Settings view shows: the engine's preferences, and the app's own start-at-login. */
export type Settings = Pick<EngineSettings, "notifications" | "auto_forward" | "privileged_ports"> & {
  start_at_login: boolean;
};
