# bench/chart.gp — grouped bars from report.py's rps.dat and p99.dat.
# usage: gnuplot -e "datadir='bench/results/raw'; outfile='bench/results/bench.png'" bench/chart.gp
# Top panel: requests/s per row (group) and target (bar). Bottom: p99 latency.
# Both on a log scale: the rows differ by orders of magnitude.

load datadir.'/chart.vars'          # ntargets, nrows, subtitle, rps_lo/hi, p99_lo/hi

set terminal pngcairo size 1200,900 font "sans,10" noenhanced
set output outfile
set datafile missing "NaN"
set key autotitle columnheader      # first line of the .dat files: target names

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right horizontal
set grid ytics lc rgb "#dddddd"
set logscale y
set xtics nomirror scale 0
set xrange [-0.6:nrows-0.4]

# x position of bar i (1-based) in the group at x = row index (gap 1)
barx(row, i) = row + (i - 1 - (ntargets - 1) / 2.0) / (ntargets + 1.0)
set linetype 1 lc rgb "#8c8c8c"
set linetype 2 lc rgb "#2a9d3a"
set linetype 3 lc rgb "#3b6fb6"
set linetype 4 lc rgb "#d9822b"
set linetype 5 lc rgb "#9b59b6"
set linetype 6 lc rgb "#c0392b"

set multiplot layout 2,1 title "portcullis vs nginx vs HAProxy, one worker each, same upstream\n".subtitle font ",11"

set title "requests/s, median of the runs (higher is better)"
set ylabel "requests/s"
set format y "%.0s%c"
set yrange [rps_lo:rps_hi]
plot for [i=2:ntargets+1] datadir.'/rps.dat' using i:xtic(1), \
     for [i=2:ntargets+1] datadir.'/rps.dat' using (barx($0, i-1)):i:(gprintf("%.1s%c", column(i))) \
         with labels rotate by 90 left offset 0,0.3 font ",8" notitle

set title "p99 latency of the median run (lower is better)"
set ylabel "p99 (ms)"
set format y "%g"
set yrange [p99_lo:p99_hi]
plot for [i=2:ntargets+1] datadir.'/p99.dat' using i:xtic(1), \
     for [i=2:ntargets+1] datadir.'/p99.dat' using (barx($0, i-1)):i:(sprintf("%.3g", column(i))) \
         with labels rotate by 90 left offset 0,0.3 font ",8" notitle

unset multiplot
