# bench/compare_bars.gp - clustered bars per scenario (bench/compare_report.py): CPU seconds
# per 1000 requests of each pod's proxy, or max req/s.
#
# gnuplot -e "dat='F.dat'; out='F.png'; ttl='...'; ylab='...'; ncol=3" compare_bars.gp
# F.dat: a header row ("scenario" and one name per bar of a cluster), then one row per
# scenario: its name and ncol-1 values ("-" where there is none).
set terminal pngcairo size 1000,560 font ",10" noenhanced
set output out
set title ttl
set ylabel ylab
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set datafile missing "-"
set xtics rotate by -25 nomirror
set grid ytics
set yrange [0:*]
set key top right autotitle columnheader
plot for [i=2:ncol] dat using i:xtic(1)
