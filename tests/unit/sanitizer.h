/* sanitizer.h — what the unit tests need to know about the sanitizer they are built with.
 * LAB_UNDER_TSAN: ThreadSanitizer, whose shadow memory grows with every byte touched (RSS cannot
 * be judged) and whose runtime changes what a fork child sees and slows the thread tests.
 * LAB_SHADOW_DIV: AddressSanitizer keeps one shadow byte per 8 bytes touched and does not give it
 * back when the pages are purged; RSS tests add touched / LAB_SHADOW_DIV to what they allow. */
#ifndef LAB_TEST_SANITIZER_H
#define LAB_TEST_SANITIZER_H

#if defined(__SANITIZE_THREAD__)
#define LAB_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LAB_UNDER_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define LAB_SHADOW_DIV 8
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LAB_SHADOW_DIV 8
#endif
#endif

#endif
