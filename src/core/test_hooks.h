// Test hooks: fault injection that lets the test suite put a long job or a server into a chosen
// state deterministically, whatever the machine's speed or load (a test that kills a process
// "after 0.3 s" interrupts it or not depending on how busy the machine is). Compiled into every
// build, since the tests drive the release binary; inert unless the environment names a site.
// Each call costs one getenv(), so sites sit at per-window / per-step / per-token granularity.
//
//   GLASSBOX_KILL_AT=SITE:N     the process kills itself with SIGKILL at the first
//                               kill_point(SITE, v) with v >= N: a kill -9 at a known place
//   GLASSBOX_HOLD_AT=SITE:PATH  hold_point(SITE) waits while the file PATH exists: work held in
//                               place until the test removes the file
//
// The sites and what their values count are listed in docs/testing.md. Never for production
// behaviour: nothing but tests sets these variables.
#pragma once

#include <cstdint>
#include <string_view>

namespace glassbox {

// SIGKILLs this process when GLASSBOX_KILL_AT names `site` and `value` has reached its N.
void kill_point(std::string_view site, int64_t value);

// Waits (polling every millisecond) while GLASSBOX_HOLD_AT names `site` and its file exists.
void hold_point(std::string_view site);

}  // namespace glassbox
