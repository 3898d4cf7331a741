#!/usr/bin/env bash
# Harbour Hotels, end to end on a SQLite file (hotel.db next to this script): schema, the
# loyalty program counted in nights, the knowledge base, guests, stays, room preferences,
# complaints on the desk's calendar, a free night, and the travel segments.
#
# Needs crmkit, its four plugins and ./hotel_rooms installed (see README.md).
# CRMKIT names the command to run (default: crmkit on PATH).
set -euo pipefail
cd "$(dirname "$0")"
crmkit=${CRMKIT:-crmkit}
export CRMKIT_CONFIG="$PWD/crmkit.toml"
unset CRMKIT_PLUGINS CRMKIT_DATABASE_URL

step() {  # show the command (arguments with spaces quoted), then run it
  local shown=() arg
  for arg in "$@"; do [[ $arg == *" "* ]] && arg="\"$arg\""; shown+=("$arg"); done
  printf '\n$ crmkit %s\n' "${shown[*]}"
  "$crmkit" "$@"
}

if ! "$crmkit" plugins list --format csv | grep -q '^hotel_rooms,.*,yes,ok'; then
  echo "the hotel_rooms plugin is not installed: pip install ./hotel_rooms" >&2
  exit 1
fi
rm -f hotel.db hotel.db-wal hotel.db-shm

step db upgrade
step loyalty programs load loyalty/nights.toml
step kb import kb --author concierge
step import customers guests.csv

# stays (a property-management system's export) become core orders with room-night lines;
# each earns one loyalty point per night and counts as nights for the travel segments
step rooms stays stays.csv

step rooms prefer G-1001 --floor high --pillow firm --quiet --note "sparkling water in the room"
step rooms prefer G-1003 --floor low --pillow hypoallergenic --bed twin

# Tom's complaint on Friday 22:00 (Lisbon): the desk closes at 23:00 and opens Saturday 09:00.
step complaints log --customer G-1003 --channel phone --category noise \
  --description "Party in the next room until 2am" --at 2026-07-03T22:00+01:00
# Ana is a VIP: urgent; the day after is Portugal Day, a holiday on the desk's calendar.
step complaints log --customer G-1001 --channel phone --category housekeeping \
  --description "Room not cleaned on the second day" --at 2026-06-09T22:30+01:00

step loyalty members
step loyalty redeem 2 free-night            # Li Wei (customer 2) spends 10 nights' points

step kb search "quiet hours"
step kb suggest --text "The party next door was so loud I could not sleep"
step segment pack travel --as-of 2026-11-30
step rooms show G-1001
