/* Test-only stand-in for Windows' bcryptprimitives.dll under Wine 8, which lacks ProcessPrng:
 * Rust's std (1.78 and later) imports it for its random numbers. It answers from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. Never shipped: tests/wine/run.sh puts it
 * beside the test executables only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
