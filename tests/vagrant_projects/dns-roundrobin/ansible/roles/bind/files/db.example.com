$TTL 60
@	IN	SOA	dns.example.com. admin.example.com. (
		2026120101	; serial
		3600		; refresh
		600		; retry
		86400		; expire
		60 )		; negative cache
@	IN	NS	dns.example.com.
dns	IN	A	10.1.1.103
nodo1	IN	A	10.1.1.101
nodo2	IN	A	10.1.1.102
www	IN	A	10.1.1.101
www	IN	A	10.1.1.102
