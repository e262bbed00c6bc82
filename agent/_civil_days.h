/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil), for the
 * agent's C modules that turn a written date into a time (_parse_native.c, sources/_syslog_native.c). */
#ifndef FLEETLOG_CIVIL_DAYS_H
#define FLEETLOG_CIVIL_DAYS_H
#include <stdint.h>

static inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#endif
