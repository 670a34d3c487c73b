// GLASSBOX_SANITIZED is defined in ASan/TSan builds (g++ or clang), where slow exhaustive tests
// take a deterministic subsample instead.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GLASSBOX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GLASSBOX_SANITIZED 1
#endif
#endif
