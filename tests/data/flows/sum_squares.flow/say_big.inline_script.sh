total="$1"
label="$2"
echo "$label: $total"
