# Requests per second against connections (unpipelined) for contactd, Redis and the echo floor.
# Run by scripts/bench in docs/bench, reading throughput.dat.
set terminal svg size 720,420 dynamic font "sans,12"
set output "throughput.svg"
set title "Cache hits over a Unix socket, server on one core, client on the other"
set xlabel "connections (one request in flight each)"
set ylabel "requests per second"
set logscale x
set xtics (1, 2, 5, 10, 25, 50, 100)
set format y "%.0s%c"
set key top left
set grid
plot "throughput.dat" using 1:4 with linespoints title "echo floor (fixed reply)" lw 2, \
     "" using 1:3 with linespoints title "Redis 7 GET" lw 2, \
     "" using 1:2 with linespoints title "contactd contact.get" lw 2
