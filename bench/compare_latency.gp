# bench/compare_latency.gp - latency percentile curves, one per scenario (bench/compare_report.py)
#
# gnuplot -e "dat='F.dat'; out='F.png'; ttl='...'; names='direct rm-uring ...'" compare_latency.gp
# F.dat: one block per scenario, in the order of names, blocks separated by two blank lines;
# rows "x latency_us" with x = 1/(1 - percentile/100) (50% -> 2, 99% -> 100, 99.9% -> 1000),
# the usual log axis of latency percentile plots, so the tail gets the room.
set terminal pngcairo size 1000,600 font ",10" noenhanced
set output out
set title ttl
set logscale x
set logscale y
set xlabel "percentile"
set ylabel "latency (us)"
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000)
set grid xtics ytics mytics
set key top left
n = words(names)
plot for [i=1:n] dat index (i-1) using 1:2 with linespoints pointsize 0.6 linewidth 2 title word(names, i)
